"""Prices from LiteLLM's offline table, and the gateway's fail-fast settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from kit.core.errors import ConfigError
from kit.core.settings import load_settings
from kit.gateway.config import Deployment, Price, ResolvedDeployment
from kit.gateway.pricing import Pricing
from kit.gateway.settings import GatewaySettings


def deployment(provider: str, model: str, price: Price | None = None) -> ResolvedDeployment:
    spec = Deployment(provider=provider, model=model, price=price)  # type: ignore[arg-type]
    return ResolvedDeployment(name="d", spec=spec, api_key=SecretStr("k"), api_base=None)


def test_cloud_prices_come_from_litellms_shipped_table() -> None:
    pricing = Pricing()

    per_prompt, per_completion = pricing.per_token(deployment("openai", "gpt-4o-mini"))

    assert len(pricing.table) > 1000  # read from the installed package, no network
    assert per_prompt == pytest.approx(0.15 / 1e6) and per_completion == pytest.approx(0.6 / 1e6)
    # 1,000 prompt + 1,000 completion tokens of gpt-4o-mini: $0.00015 + $0.0006.
    assert pricing.cost(deployment("openai", "gpt-4o-mini"), 1000, 1000) == pytest.approx(0.00075)


def test_a_configured_price_wins_and_local_models_are_free() -> None:
    pricing = Pricing()
    own = deployment("openai", "my-vllm-model", Price(input_per_mtok=2.0, output_per_mtok=4.0))

    assert pricing.cost(own, 1_000_000, 500_000) == pytest.approx(4.0)
    assert pricing.cost(deployment("local", "smollm2-135m-instruct"), 10_000, 10_000) == 0.0
    assert pricing.cost(deployment("openai", "a-model-nobody-prices"), 100, 100) == 0.0


def test_open_mode_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_ENV", "production")
    monkeypatch.setenv("GATEWAY_AUTH", "open")

    with pytest.raises(ConfigError, match=r"GATEWAY_AUTH=open .* refused with KIT_ENV=production"):
        load_settings(GatewaySettings, _env_file=None)


def test_gateway_variables_use_their_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9000")
    monkeypatch.setenv("GATEWAY_MAX_TOKENS_LIMIT", "0")

    with pytest.raises(ConfigError, match="GATEWAY_MAX_TOKENS_LIMIT='0'"):
        load_settings(GatewaySettings, _env_file=None)
