"""Secrets come from the environment or a `NAME_FILE`, and are masked in every log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kit.core.errors import ConfigError
from kit.core.logging import configure_logging, get_logger
from kit.core.secrets import SecretScrubber, read_secret, secret_values
from kit.core.settings import load_settings
from kit.gateway.config import ModelsFile, resolve
from kit.gateway.settings import GatewaySettings

KEY = "sk-unit-0123456789abcdef"


def test_a_secret_comes_from_its_variable_or_from_the_file_its_twin_names(tmp_path: Path) -> None:
    secret_file = tmp_path / "openai"
    secret_file.write_text(KEY + "\r\n")

    assert read_secret("OPENAI_API_KEY", {"OPENAI_API_KEY": KEY}) == KEY
    assert read_secret("OPENAI_API_KEY", {"OPENAI_API_KEY_FILE": str(secret_file)}) == KEY
    assert read_secret("OPENAI_API_KEY", {"OPENAI_API_KEY": ""}) is None
    assert read_secret("OPENAI_API_KEY", {}) is None


def test_an_ambiguous_missing_or_empty_secret_file_is_an_error_saying_what_to_do(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty").write_text("\n")
    cases = {
        "keep one": {"OPENAI_API_KEY": KEY, "OPENAI_API_KEY_FILE": "/run/secrets/openai"},
        "Mount the secret at that path": {"OPENAI_API_KEY_FILE": str(tmp_path / "absent")},
        "write the secret into it": {"OPENAI_API_KEY_FILE": str(tmp_path / "empty")},
    }
    for fix, environ in cases.items():
        with pytest.raises(ConfigError, match=fix):
            read_secret("OPENAI_API_KEY", environ)


def test_settings_read_secret_fields_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gateway-key").write_text(KEY)
    monkeypatch.setenv("GATEWAY_API_KEY_FILE", str(tmp_path / "gateway-key"))

    settings = load_settings(GatewaySettings, _env_file=None)

    assert settings.gateway_api_key is not None
    assert settings.gateway_api_key.get_secret_value() == KEY
    assert KEY in settings.secret_values()


def test_a_deployment_is_enabled_by_a_key_file(tmp_path: Path) -> None:
    (tmp_path / "openai").write_text(KEY)
    spec = ModelsFile.model_validate(
        {
            "default_model": "gpt",
            "deployments": {
                "openai": {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "api_key_env": "OPENAI_API_KEY",
                }
            },
            "models": {"gpt": ["openai"]},
        }
    )

    models = resolve(spec, {"OPENAI_API_KEY_FILE": str(tmp_path / "openai")})

    [deployment] = models.chains["gpt"]
    assert deployment.api_key is not None and deployment.api_key.get_secret_value() == KEY


def test_secret_values_are_taken_from_secret_named_variables_only(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("hf_filetoken_123456")
    environ = {
        "OPENAI_API_KEY": KEY,
        "HF_TOKEN_FILE": str(tmp_path / "token"),
        "DB_PASSWORD": "short",  # under 8 characters: masking it would garble ordinary words
        "KIT_DATA_DIR": "/var/lib/kit-data-folder",  # not a secret by name
    }

    assert secret_values(environ) == {KEY, "hf_filetoken_123456"}


def test_the_scrubber_masks_known_values_and_bearer_tokens() -> None:
    scrub = SecretScrubber({KEY, "sk-unit"})
    line = f'{{"error": "Incorrect API key provided: {KEY}", "auth": "Bearer abc.def-123456"}}'

    masked = scrub(None, "info", line)

    assert KEY not in masked and "abc.def-123456" not in masked
    assert masked.count("[REDACTED]") == 2
    assert json.loads(masked)["auth"] == "Bearer [REDACTED]"  # still valid JSON


def test_configured_logging_masks_secrets_from_the_environment_and_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unit-abcdefgh")
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        log_format="json",
        gateway_api_key="sk-kit-unit-7654321",
    )
    configure_logging(settings)
    try:
        get_logger("test").warning("upstream_said", error="bad key sk-ant-unit-abcdefgh")
        logging.getLogger("some.library").warning("header Bearer sk-kit-unit-7654321 refused")
    finally:
        logging.getLogger().handlers = []

    err = capsys.readouterr().err
    assert "sk-ant-unit-abcdefgh" not in err and "sk-kit-unit-7654321" not in err
    assert err.count("[REDACTED]") == 2
