"""The shared key store: a revoked or added key takes effect on a running store without a
restart; a broken file keeps the last good keys; a removed file refuses everyone."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.core.errors import ConfigError
from kit.core.keys import KeyStore, StoredKey, add_key, load_keys, revoke_key


class Clock:
    """A clock the test moves by hand, so the store's once-a-second check is deterministic."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys_path(tmp_path: Path) -> Path:
    return tmp_path / "keys.yaml"


def test_a_revoked_key_is_refused_after_the_next_check(keys_path: Path) -> None:
    key = add_key(keys_path, StoredKey, "team-a", prefix="sk-test-")
    clock = Clock()
    store = KeyStore.watching(keys_path, StoredKey, check_every_s=1.0, clock=clock)
    assert store.find(key) is not None

    revoke_key(keys_path, StoredKey, "team-a")
    clock.now += 0.5
    assert store.find(key) is not None  # not looked at yet: at most one stat() per second
    clock.now += 0.6

    assert store.find(key) is None
    assert len(store) == 0


def test_a_key_added_while_running_is_accepted(keys_path: Path) -> None:
    add_key(keys_path, StoredKey, "team-a", prefix="sk-test-")
    clock = Clock()
    store = KeyStore.watching(keys_path, StoredKey, clock=clock)

    second = add_key(keys_path, StoredKey, "team-b", prefix="sk-test-")
    clock.now += 1.1

    found = store.find(second)
    assert found is not None and found.id == "team-b"


def test_a_file_broken_by_hand_keeps_the_last_good_keys(keys_path: Path) -> None:
    key = add_key(keys_path, StoredKey, "team-a", prefix="sk-test-")
    clock = Clock()
    store = KeyStore.watching(keys_path, StoredKey, clock=clock)

    keys_path.write_text("keys:\n  - id: team-a\n    sha256: [not closed\n")
    clock.now += 1.1

    assert store.find(key) is not None
    with pytest.raises(ConfigError, match="invalid"):
        load_keys(keys_path, StoredKey)


def test_a_removed_keys_file_refuses_everyone(keys_path: Path) -> None:
    key = add_key(keys_path, StoredKey, "team-a", prefix="sk-test-")
    clock = Clock()
    store = KeyStore.watching(keys_path, StoredKey, clock=clock)

    keys_path.unlink()
    clock.now += 1.1

    assert store.find(key) is None


def test_revoking_an_unknown_id_names_the_ids_there_are(keys_path: Path) -> None:
    add_key(keys_path, StoredKey, "team-a", prefix="sk-test-")

    with pytest.raises(ConfigError, match=r"No key with id 'team-z'.*team-a"):
        revoke_key(keys_path, StoredKey, "team-z")


def test_a_duplicated_id_is_an_error(keys_path: Path) -> None:
    digest = "0" * 64
    keys_path.write_text(
        f"keys:\n  - {{id: a, sha256: '{digest}'}}\n  - {{id: a, sha256: '{'1' * 64}'}}\n"
    )

    with pytest.raises(ConfigError, match="'a' twice"):
        load_keys(keys_path, StoredKey)


def test_writes_leave_no_staging_file_and_stay_owner_only(keys_path: Path) -> None:
    add_key(keys_path, StoredKey, "team-a", prefix="sk-test-")
    add_key(keys_path, StoredKey, "team-b", prefix="sk-test-")
    revoke_key(keys_path, StoredKey, "team-a")

    assert [p.name for p in keys_path.parent.iterdir()] == ["keys.yaml"]
    assert keys_path.stat().st_mode & 0o777 == 0o600
