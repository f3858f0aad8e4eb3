"""API keys are stored as hashes in a private file and found by the key a caller presents;
`redact` masks e-mails, phone and card numbers in logged text and leaves dates and prices alone."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from kit.core.errors import ConfigError
from kit.core.redact import redact
from kit.gateway.auth import KeyStore, add_key, load_keys

# --- API keys -------------------------------------------------------------------------------------


@pytest.fixture
def keys_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gateway-keys.yaml"


def create_team_a(path: Path) -> str:
    return add_key(path, "team-a", rpm=60, tpm=None, budget_usd=5.0)


def test_a_new_key_has_the_kit_prefix(keys_path: Path) -> None:
    key = create_team_a(keys_path)

    assert key.startswith("sk-kit-")
    assert len(key) > len("sk-kit-") + 32


def test_the_keys_file_holds_the_hash_of_the_key_not_the_key(keys_path: Path) -> None:
    key = create_team_a(keys_path)
    text = keys_path.read_text()

    assert hashlib.sha256(key.encode()).hexdigest() in text
    assert key not in text
    assert key.removeprefix("sk-kit-") not in text


def test_the_keys_file_is_readable_by_its_owner_only(keys_path: Path) -> None:
    create_team_a(keys_path)

    assert stat.S_IMODE(keys_path.stat().st_mode) == 0o600


def test_a_created_key_is_found_with_its_limits(keys_path: Path) -> None:
    key = create_team_a(keys_path)

    record = KeyStore(load_keys(keys_path)).find(key)

    assert record is not None
    assert (record.id, record.rpm, record.tpm, record.budget_usd) == ("team-a", 60, None, 5.0)


def test_a_wrong_key_is_not_found(keys_path: Path) -> None:
    key = create_team_a(keys_path)
    store = KeyStore(load_keys(keys_path))

    assert store.find(key + "x") is None
    assert store.find("sk-kit-not-a-key") is None


def test_a_second_key_is_added_beside_the_first(keys_path: Path) -> None:
    first = create_team_a(keys_path)
    second = add_key(keys_path, "team-b", rpm=None, tpm=1000, budget_usd=None)
    store = KeyStore(load_keys(keys_path))

    assert len(store) == 2
    found = [store.find(key) for key in (first, second)]
    assert [record.id if record else None for record in found] == ["team-a", "team-b"]


def test_adding_an_id_twice_is_an_error_naming_the_id(keys_path: Path) -> None:
    create_team_a(keys_path)

    with pytest.raises(ConfigError, match="'team-a' already exists"):
        create_team_a(keys_path)
    assert len(load_keys(keys_path)) == 1


def test_a_keys_file_with_a_malformed_hash_is_an_error(keys_path: Path) -> None:
    keys_path.parent.mkdir(parents=True)
    keys_path.write_text("keys:\n  - id: team-a\n    sha256: not-a-sha256\n")

    with pytest.raises(ConfigError, match="sha256") as raised:
        load_keys(keys_path)
    assert str(keys_path) in str(raised.value)


def test_a_missing_keys_file_holds_no_keys(keys_path: Path) -> None:
    assert load_keys(keys_path) == []


# --- redact ---------------------------------------------------------------------------------------


def test_email_addresses_are_masked() -> None:
    assert redact("Mail jo.doe+news@example.co.uk today") == "Mail [EMAIL] today"


@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "(555) 123-4567", "555.123.4567"])
def test_phone_numbers_in_common_formats_are_masked(phone: str) -> None:
    assert redact(f"Call {phone} after 5pm") == "Call [PHONE] after 5pm"


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111"])
def test_luhn_valid_card_numbers_are_masked(card: str) -> None:
    assert redact(f"Paid with {card}, thanks") == "Paid with [CARD], thanks"


def test_dates_prices_and_short_numbers_are_left_alone() -> None:
    text = "Order 12345 shipped 2026-11-29, total 19.99 EUR."

    assert redact(text) == text


def test_an_iso_date_followed_by_a_time_is_left_alone() -> None:
    # The usual timestamp in logs ("2026-11-29 12:30:45"), the text this module cleans.
    text = "Shipped at 2026-11-29 12:30:45 UTC."

    assert redact(text) == text


def test_everything_in_one_line_is_masked_and_the_rest_kept() -> None:
    text = "jo@example.com, +44 20 7946 0958, 4111 1111 1111 1111, due 2026-11-29"

    assert redact(text) == "[EMAIL], [PHONE], [CARD], due 2026-11-29"
