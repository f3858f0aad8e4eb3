"""Providers: one class per way of reaching a model; `build_providers` makes one per deployment."""

from __future__ import annotations

import aiohttp

from kit.gateway.config import GatewayModels
from kit.gateway.providers.base import Provider, ProviderError
from kit.llm.local_client import LocalClient


def build_providers(
    models: GatewayModels,
    http: aiohttp.ClientSession,
    local: LocalClient,
    *,
    tracking_uri: str | None = None,
) -> dict[str, Provider]:
    """A provider per enabled deployment, by deployment name. Imports only what is used."""
    providers: dict[str, Provider] = {}
    for chain in models.chains.values():
        for deployment in chain:
            if deployment.name in providers:
                continue
            provider: Provider
            if deployment.spec.provider == "local":
                from kit.gateway.providers.local import LocalProvider

                provider = LocalProvider(deployment, local)
            elif deployment.spec.provider == "openai":
                from kit.gateway.providers.openai_compatible import OpenAICompatibleProvider

                provider = OpenAICompatibleProvider(deployment, http)
            elif deployment.spec.provider == "mlflow":
                from kit.gateway.providers.registry import RegistryProvider

                if tracking_uri is None:
                    raise ValueError("an mlflow deployment needs the tracking URI")
                provider = RegistryProvider(deployment, tracking_uri)
            else:
                from kit.gateway.providers.litellm_provider import LiteLLMProvider

                provider = LiteLLMProvider(deployment)
            providers[deployment.name] = provider
    return providers


__all__ = ["Provider", "ProviderError", "build_providers"]
