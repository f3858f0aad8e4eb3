"""Build gateways for tests: a models file pointing at the fake upstream, keys, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kit.gateway.app import create_app
from kit.gateway.auth import ApiKey, KeyStore, hash_key
from kit.gateway.settings import GatewaySettings
from kit.llm.local_client import LocalClient
from tests.support.fake_openai import FakeUpstream

KEY = "sk-kit-test-key-for-team-a"


def write_models(
    path: Path,
    upstream_url: str,
    *,
    retries: dict[str, int] | None = None,
    cooldown_s: float = 30,
    failures_to_cooldown: int = 3,
    timeout_s: float = 2.0,
    price: dict[str, float] | None = None,
) -> Path:
    """Deployments "a" and "b" are the fake upstream under two model names, so a test can tell
    from the recorded requests which deployment was called."""

    def fake(model: str, **extra: Any) -> dict[str, Any]:
        spec = {
            "provider": "openai",
            "model": model,
            "api_base": upstream_url,
            "timeout_s": timeout_s,
        }
        if price:
            spec["price"] = price
        return spec | extra

    spec = {
        "default_model": "local",
        "routing": {
            "retries": retries
            or {"rate_limit": 0, "server_error": 0, "timeout": 0, "connection": 0},
            "backoff_s": 0,
            "cooldown_s": cooldown_s,
            "failures_to_cooldown": failures_to_cooldown,
        },
        "deployments": {
            "a": fake("fake-a"),
            "b": fake("fake-b"),
            "fake-embedder": fake("fake-embed", task="embedding"),
            # The same fake upstream reached through LiteLLM, as Anthropic or Gemini would be.
            "via-litellm": {
                "provider": "litellm",
                "model": "openai/fake-litellm",
                "api_base": upstream_url,
                "api_key_env": "FAKE_PROVIDER_KEY",
                "timeout_s": timeout_s,
            },
            "local-smollm2": {"provider": "local", "model": "smollm2-135m-instruct"},
            "local-minilm": {"provider": "local", "model": "all-minilm-l6-v2", "task": "embedding"},
        },
        "models": {
            "chain": ["a", "b"],
            "litellm-then-b": ["via-litellm", "b"],
            "solo": ["a"],
            "cloud-then-local": ["a", "local-smollm2"],
            "local": ["local-smollm2"],
            "minilm": ["local-minilm"],
            "all-minilm-l6-v2": ["local-minilm"],  # as in the shipped models.yaml
            "fake-embed": ["fake-embedder"],
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def calls_to(upstream: FakeUpstream, model: str) -> int:
    return sum(
        1
        for r in upstream.requests
        if r.path.endswith("/chat/completions") and (r.body or {}).get("model") == model
    )


def gateway_app(
    tmp_path: Path,
    upstream: FakeUpstream,
    local: LocalClient,
    *,
    key: ApiKey | None = None,
    models: dict[str, Any] | None = None,
    **settings: Any,
) -> Any:
    """A gateway app with one key (KEY, or `key`'s limits under KEY) and test settings."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    models_file = write_models(tmp_path / "models.yaml", upstream.base_url, **(models or {}))
    record = key or ApiKey(id="team-a", sha256=hash_key(KEY))
    gateway_settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        models_file=models_file,
        **settings,
    )
    environ = {"FAKE_PROVIDER_KEY": "sk-fake-provider"}
    return create_app(gateway_settings, local=local, environ=environ, keys=KeyStore([record]))


def chat_body(content: str = "Hello?", model: str = "chain", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


AUTH = {"authorization": f"Bearer {KEY}"}
