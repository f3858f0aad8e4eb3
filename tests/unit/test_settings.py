"""Settings: read from the environment and .env, validated with messages that say how to fix."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

import kit
from kit.core.errors import ConfigError
from kit.core.settings import Environment, KitSettings, env_names, load_settings

REPO = Path(__file__).resolve().parents[2]


class DemoServiceSettings(KitSettings):
    """How a service extends the base: its own prefix, its own bounded fields."""

    model_config = SettingsConfigDict(env_prefix="DEMO_")
    port: int = Field(8000, ge=1, le=65535)


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("KIT_CHAT_THREADS", "3")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/0")

    settings = load_settings(KitSettings, _env_file=None)

    assert settings.log_level == "DEBUG"
    assert settings.chat_threads == 3
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:6390/0"
    assert settings.environment is Environment.DEVELOPMENT


def test_a_service_prefix_applies_to_its_fields_and_shared_names_stay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_PORT", "9001")
    monkeypatch.setenv("KIT_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("DEMO_LOG_LEVEL", "DEBUG")  # not a variable: shared fields keep KIT_

    settings = load_settings(DemoServiceSettings, _env_file=None)

    assert settings.port == 9001
    assert settings.log_level == "WARNING"
    assert env_names(DemoServiceSettings)["port"] == "DEMO_PORT"
    assert env_names(DemoServiceSettings)["log_level"] == "KIT_LOG_LEVEL"


def test_dotenv_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KIT_LOG_LEVEL=ERROR\nKIT_CHAT_CONTEXT=1024\n")
    monkeypatch.setenv("KIT_CHAT_CONTEXT", "4096")

    settings = load_settings(KitSettings, _env_file=env_file)

    assert settings.log_level == "ERROR"
    assert settings.chat_context_tokens == 4096


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KIT_CHAT_THREADS", "-1", "greater than or equal to 0"),
        ("KIT_CHAT_CONTEXT", "100000", "less than or equal to 8192"),
        ("KIT_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("KIT_ENV", "staging", "'development', 'test' or 'production'"),
        ("KIT_PROBE_TIMEOUT_S", "soon", "valid number"),
    ],
)
def test_an_invalid_value_names_the_variable_and_the_rule(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as caught:
        load_settings(KitSettings, _env_file=None)

    message = str(caught.value)
    assert f"{variable}={value!r}" in message
    assert expected in message
    assert ".env.example" in message


def test_all_problems_are_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_CHAT_THREADS", "-1")
    monkeypatch.setenv("KIT_LOG_LEVEL", "LOUD")

    with pytest.raises(ConfigError, match=r"Invalid configuration \(2 problems\)"):
        load_settings(KitSettings, _env_file=None)


def test_secrets_are_hidden_in_repr_and_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", "sk-live-very-secret")

    settings = load_settings(KitSettings, _env_file=None)

    assert "sk-live-very-secret" not in repr(settings)
    assert "sk-live-very-secret" not in str(settings.model_dump())
    assert settings.gateway_api_key is not None
    assert settings.gateway_api_key.get_secret_value() == "sk-live-very-secret"


def test_production_refuses_a_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_ENV", "production")
    monkeypatch.setenv("GATEWAY_API_KEY", "changeme")

    with pytest.raises(ConfigError) as caught:
        load_settings(KitSettings, _env_file=None)

    assert "GATEWAY_API_KEY is a placeholder value" in str(caught.value)
    assert "changeme" not in str(caught.value)  # never echo a secret, even a bad one


def test_placeholders_are_fine_in_development_and_real_secrets_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", "changeme")
    assert load_settings(KitSettings, _env_file=None).environment is Environment.DEVELOPMENT

    monkeypatch.setenv("KIT_ENV", "production")
    monkeypatch.setenv("GATEWAY_API_KEY", "4Jx9-real-random-value")
    assert load_settings(KitSettings, _env_file=None).environment is Environment.PRODUCTION


def test_log_format_auto_means_json_outside_development() -> None:
    assert KitSettings(_env_file=None, environment="production").json_logs is True
    assert (
        KitSettings(_env_file=None, log_format="console", environment="production").json_logs
        is False
    )
    assert KitSettings(_env_file=None, log_format="json").json_logs is True


def test_loading_settings_creates_no_directories(tmp_path: Path) -> None:
    settings = KitSettings(_env_file=None, data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    assert not settings.data_dir.exists()

    settings.ensure_dirs()

    assert settings.data_dir.is_dir() and settings.cache_dir.is_dir()


def _all_settings_classes() -> set[type[KitSettings]]:
    """KitSettings and every subclass defined in a settings module of the `kit` package."""
    for module in pkgutil.walk_packages(kit.__path__, "kit."):
        if module.name.endswith(".settings"):
            importlib.import_module(module.name)
    found, pending = set(), [KitSettings]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("kit."):
            found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_env_example_documents_every_variable() -> None:
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M)
    )

    classes = _all_settings_classes()
    variables = {name for cls in classes for name in env_names(cls).values()}

    assert KitSettings in classes
    assert variables - documented == set(), "add these to .env.example with a comment"
