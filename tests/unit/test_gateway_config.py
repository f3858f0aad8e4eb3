"""The models file: the shipped one loads on a laptop with no keys, keys enable cloud deployments,
and every mistake in a file is a `ConfigError` naming the alias or field to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from kit.core.errors import ConfigError
from kit.gateway.config import GatewayModels, load_models
from kit.gateway.settings import PACKAGE_DIR

SHIPPED = PACKAGE_DIR / "models.yaml"


def chain_names(models: GatewayModels, alias: str) -> list[str]:
    return [deployment.name for deployment in models.chains[alias]]


def write_models(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def valid_spec() -> dict[str, Any]:
    """A small, valid models file; each test breaks one thing in it."""
    return {
        "default_model": "local",
        "deployments": {
            "local-chat": {"provider": "local", "model": "smollm2-135m-instruct"},
            "local-embed": {"provider": "local", "model": "all-minilm-l6-v2", "task": "embedding"},
            "cloud": {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "api_key_env": "OPENAI_API_KEY",
            },
        },
        "models": {"local": ["local-chat"], "embed": ["local-embed"]},
    }


# --- The shipped file -----------------------------------------------------------------------------


def test_shipped_file_without_keys_keeps_only_aliases_served_on_this_machine() -> None:
    models = load_models(SHIPPED, environ={})

    assert chain_names(models, "local") == ["local-smollm2"]
    assert chain_names(models, "gpt-4o-mini") == ["local-smollm2"]
    assert chain_names(models, "all-minilm-l6-v2") == ["local-minilm"]
    assert chain_names(models, "intent-router") == ["intent-router-champion"]  # the registry
    assert "text-embedding-3-small" not in models.chains  # only OpenAI serves it
    for chain in models.chains.values():
        assert all(d.spec.provider in ("local", "mlflow") for d in chain)


def test_a_registry_deployment_needs_a_models_uri(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "default_model: r\ndeployments:\n  d: {provider: mlflow, model: intent-router}\n"
        "models:\n  r: [d]\n"
    )

    with pytest.raises(ConfigError, match="models:/NAME@ALIAS"):
        load_models(path, environ={})


def test_shipped_file_without_keys_says_which_variable_disabled_a_deployment() -> None:
    models = load_models(SHIPPED, environ={})

    assert "OPENAI_API_KEY" in models.disabled["openai-gpt-4o-mini"]
    assert "ANTHROPIC_API_KEY" in models.disabled["anthropic-haiku"]
    assert "local-smollm2" not in models.disabled


def test_an_openai_key_puts_openai_first_in_the_gpt_4o_mini_chain() -> None:
    models = load_models(SHIPPED, environ={"OPENAI_API_KEY": "sk-test"})

    assert chain_names(models, "gpt-4o-mini") == ["openai-gpt-4o-mini", "local-smollm2"]
    assert "openai-gpt-4o-mini" not in models.disabled


def test_the_api_key_is_a_secret_that_repr_does_not_show() -> None:
    models = load_models(SHIPPED, environ={"OPENAI_API_KEY": "sk-test"})
    openai = models.chains["gpt-4o-mini"][0]

    assert isinstance(openai.api_key, SecretStr)
    assert openai.api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(openai)
    assert "sk-test" not in repr(models)


# --- Mistakes in a file ---------------------------------------------------------------------------


def test_an_alias_naming_an_unknown_deployment_is_an_error_naming_the_alias(
    tmp_path: Path,
) -> None:
    spec = valid_spec()
    spec["models"] = {"local": ["local-chat"], "broken": ["local-chatt"]}

    with pytest.raises(ConfigError, match=r"models\.broken") as raised:
        load_models(write_models(tmp_path, spec), environ={})
    assert "local-chatt" in str(raised.value)


def test_a_misspelt_key_in_a_deployment_is_an_error_naming_the_field(tmp_path: Path) -> None:
    spec = valid_spec()
    spec["deployments"]["local-chat"]["timeout"] = 30  # meant timeout_s

    with pytest.raises(ConfigError, match=r"deployments\.local-chat\.timeout"):
        load_models(write_models(tmp_path, spec), environ={})


def test_a_chain_mixing_chat_and_embedding_deployments_is_an_error(tmp_path: Path) -> None:
    spec = valid_spec()
    spec["models"] = {"local": ["local-chat"], "mixed": ["local-chat", "local-embed"]}

    with pytest.raises(ConfigError, match=r"models\.mixed: mixes chat and embedding"):
        load_models(write_models(tmp_path, spec), environ={})


def test_a_disabled_default_model_leaves_the_other_models_served(tmp_path: Path) -> None:
    spec = valid_spec()
    spec["models"] = {"local": ["local-chat"], "cloud": ["cloud"]}
    spec["default_model"] = "cloud"

    models = load_models(write_models(tmp_path, spec), environ={})

    assert list(models.chains) == ["local"]
    assert models.disabled == {"cloud": "OPENAI_API_KEY not set"}


def test_no_enabled_deployment_at_all_is_an_error_saying_why(tmp_path: Path) -> None:
    spec = valid_spec()
    spec["models"] = {"cloud": ["cloud"]}
    spec["default_model"] = "cloud"
    spec["deployments"] = {"cloud": spec["deployments"]["cloud"]}

    with pytest.raises(ConfigError, match="No model has an enabled deployment") as raised:
        load_models(write_models(tmp_path, spec), environ={})
    assert "OPENAI_API_KEY" in str(raised.value)


def test_a_missing_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError, match="not found") as raised:
        load_models(path, environ={})
    assert str(path) in str(raised.value)


def test_invalid_yaml_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("models: [local-chat\ndeployments: {")

    with pytest.raises(ConfigError, match="not valid YAML") as raised:
        load_models(path, environ={})
    assert str(path) in str(raised.value)


def test_a_registry_deployment_is_switched_off_where_only_the_tracing_client_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The service images install `mlflow-tracing`: an importable `mlflow` with no registry code.
    from importlib.metadata import PackageNotFoundError

    import kit.gateway.config as config

    def version(name: str) -> str:
        if name == "mlflow-skinny":
            raise PackageNotFoundError(name)
        return "1.0"

    monkeypatch.setattr(config, "version", version)
    models = load_models(PACKAGE_DIR / "models.yaml", {})
    assert "intent-router-champion" in models.disabled
    assert "pip install '.[ml]'" in models.disabled["intent-router-champion"]
    assert "intent-router" not in models.chains
