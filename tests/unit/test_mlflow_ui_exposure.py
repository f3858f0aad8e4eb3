"""`kit mlflow ui` decides before starting anything: which hosts count as private, and whether a
basic-auth configuration could work. tests/e2e/test_mlflow_ui_exposure.py runs the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.cli.finetune import check_auth_config, is_loopback
from kit.core.errors import ConfigError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),  # all of 127.0.0.0/8 is this machine
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),  # every interface
        ("::", False),
        ("192.168.1.10", False),
        ("mlflow.example.com", False),  # a name may resolve to anything
    ],
)
def test_only_loopback_addresses_are_private(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD = "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///auth.db\n"


def test_a_complete_auth_config_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", "a-random-string")

    check_auth_config(write_config(tmp_path / "auth.ini", GOOD))


@pytest.mark.parametrize(
    ("text", "secret", "reason"),
    [
        (None, "set", "does not exist"),
        ("[other]\nkey = 1\n", "set", "no [mlflow] section with database_uri"),
        ("not an ini file", "set", "not a valid ini file"),
        (GOOD, None, "MLFLOW_FLASK_SERVER_SECRET_KEY is not set"),
    ],
)
def test_an_auth_config_that_cannot_work_is_refused_saying_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str | None,
    secret: str | None,
    reason: str,
) -> None:
    path = tmp_path / "auth.ini"
    if text is not None:
        path.write_text(text)
    if secret is None:
        monkeypatch.delenv("MLFLOW_FLASK_SERVER_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", secret)

    with pytest.raises(ConfigError) as refused:
        check_auth_config(path)

    assert reason in str(refused.value)
    assert "MLFLOW_AUTH_CONFIG_PATH" in str(refused.value)  # and how to fix it
