"""The RAG service's keys and access settings: `kit rag keys` writes hashes with scopes, open access
is refused in production, and /ingest's folders must lie inside the docs root."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kit.cli.app import app
from kit.core.errors import ConfigError
from kit.core.keys import hash_key
from kit.core.settings import load_settings
from kit.rag_service.auth import KEY_PREFIX, load_keys
from kit.rag_service.settings import RagSettings

runner = CliRunner()


def kit(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_kit_rag_keys_creates_lists_and_revokes_scoped_hashed_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")

    _, asker_output = kit("rag", "keys", "create", "--id", "web-app")
    _, admin_output = kit("rag", "keys", "create", "--id", "ops", "--admin")
    asker, admin = asker_output.split()[-1], admin_output.split()[-1]
    _, listed = kit("rag", "keys", "list")
    stored = yaml.safe_load((tmp_path / "rag-keys.yaml").read_text())["keys"]
    revoked = kit("rag", "keys", "revoke", "web-app")
    unknown = kit("rag", "keys", "revoke", "web-app")

    assert asker.startswith(KEY_PREFIX) and admin.startswith(KEY_PREFIX)
    assert stored == [
        {"id": "web-app", "sha256": hash_key(asker), "scopes": ["ask"]},
        {"id": "ops", "sha256": hash_key(admin), "scopes": ["ask", "ingest"]},
    ]
    assert asker not in (tmp_path / "rag-keys.yaml").read_text()  # only the hash is kept
    assert "web-app ask" in listed and "ops ask, ingest" in listed and asker not in listed
    assert revoked[0] == 0 and [k.id for k in load_keys(tmp_path / "rag-keys.yaml")] == ["ops"]
    assert unknown[0] == 2 and "No key with id 'web-app'" in unknown[1]


def test_open_access_is_refused_in_production() -> None:
    with pytest.raises(ConfigError, match=r"RAG_AUTH=open .* `kit rag keys create"):
        load_settings(RagSettings, _env_file=None, environment="production", auth="open")

    assert load_settings(RagSettings, _env_file=None, environment="test", auth="open").auth == (
        "open"
    )


def test_keys_are_required_by_default_in_their_own_file(tmp_path: Path) -> None:
    settings = load_settings(RagSettings, _env_file=None, data_dir=tmp_path)

    assert settings.auth == "keys"
    assert settings.resolved_keys_file == tmp_path / "rag-keys.yaml"


@pytest.mark.parametrize("folder", ["/etc", "../elsewhere", "docs/../../elsewhere"])
def test_an_ingest_root_outside_the_docs_root_stops_start_up(tmp_path: Path, folder: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(
            RagSettings, _env_file=None, docs_root=tmp_path / "data", ingest_roots=[folder]
        )

    message = str(refused.value)
    assert "RAG_INGEST_ROOTS" in message and "outside KIT_DOCS_ROOT" in message


def test_ingest_roots_are_relative_to_the_docs_root(tmp_path: Path) -> None:
    docs = tmp_path / "data"
    settings = load_settings(
        RagSettings, _env_file=None, docs_root=docs, ingest_roots=[".", "handbook", docs / "x"]
    )

    assert settings.resolved_ingest_roots == [docs, docs / "handbook", docs / "x"]
