"""Providers that do not speak the OpenAI API (Anthropic, Gemini, Cohere, ...), through LiteLLM.

LiteLLM translates an OpenAI-style request into each provider's own API and the answer back, for
over a hundred providers: that translation is what we use it for. Routing, retries and fallback
stay in the gateway's router, so every deployment is handled the same way whatever serves it;
we call LiteLLM with `num_retries=0` for that reason.

LiteLLM is imported only when a deployment uses it (the import takes ~5 s), and in offline mode:
otherwise it fetches its price table from the internet at import.

`acompletion` takes its connection settings (`api_base`, `api_key`, `custom_llm_provider`,
`extra_headers`, ...) as keyword arguments beside the model parameters. A request's parameters
therefore must never reach it unfiltered: only the allowlist of src/kit/gateway/schemas.py is
passed on, and the deployment's own settings are applied last, so they win over anything.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from kit.gateway.config import ResolvedDeployment
from kit.gateway.providers.base import (
    ChatAnswer,
    ChatCall,
    EmbedAnswer,
    ProviderError,
    kind_for_status,
    reported_tokens,
)
from kit.gateway.schemas import FORWARDED_CHAT_PARAMS


def import_litellm() -> Any:
    """Import LiteLLM with its network look-ups off (price table, tokenizers, telemetry)."""
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")
    import litellm

    litellm.telemetry = False
    # Otherwise each failed call also print()s a "Give Feedback / Get Help" banner to stdout,
    # outside logging: raw text among the JSON log lines, which log shippers cannot parse.
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMProvider:
    def __init__(self, deployment: ResolvedDeployment) -> None:
        self.litellm = import_litellm()
        self.model = deployment.spec.model  # LiteLLM's name: "anthropic/claude-3-5-haiku-latest"
        self.credentials: dict[str, Any] = {"num_retries": 0}
        if deployment.api_key is not None:
            self.credentials["api_key"] = deployment.api_key.get_secret_value()
        if deployment.api_base:
            self.credentials["api_base"] = deployment.api_base

    def _arguments(self, call: ChatCall, timeout: float) -> dict[str, Any]:
        """The call's model parameters (allowlisted), then ours: model, timeout, credentials."""
        params = {k: v for k, v in call.params.items() if k in FORWARDED_CHAT_PARAMS}
        return params | {"model": self.model, "messages": call.messages, "timeout": timeout}

    async def chat(self, call: ChatCall, timeout: float) -> ChatAnswer:
        try:
            response = await self.litellm.acompletion(
                **(self._arguments(call, timeout) | self.credentials)
            )
        except Exception as exc:
            raise _classify(exc) from exc
        body: dict[str, Any] = response.model_dump(exclude_none=True)
        usage = body.get("usage") or {}
        return ChatAnswer(
            body,
            reported_tokens(usage, "prompt_tokens"),
            reported_tokens(usage, "completion_tokens"),
        )

    async def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[dict[str, Any]]:
        try:
            streaming = {"stream": True, "stream_options": {"include_usage": True}}
            chunks = await self.litellm.acompletion(
                **(self._arguments(call, timeout) | streaming | self.credentials)
            )
            async for chunk in chunks:
                yield chunk.model_dump(exclude_none=True)
        except ProviderError:
            raise
        except Exception as exc:
            raise _classify(exc) from exc

    async def embed(self, texts: list[str], timeout: float) -> EmbedAnswer:
        try:
            response = await self.litellm.aembedding(
                model=self.model, input=texts, timeout=timeout, **self.credentials
            )
        except Exception as exc:
            raise _classify(exc) from exc
        rows = sorted(response.data, key=lambda row: row["index"])
        usage = getattr(response, "usage", None)
        return EmbedAnswer(
            [row["embedding"] for row in rows], getattr(usage, "prompt_tokens", 0) or 0
        )

    async def aclose(self) -> None:
        """LiteLLM keeps its own client pool for the process."""


def _classify(exc: Exception) -> ProviderError:
    """LiteLLM raises OpenAI-style exceptions carrying the upstream status; map them to kinds."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if "Timeout" in name:
        return ProviderError("timeout", str(exc), status=status)
    if "APIConnectionError" in name and status in (None, 500):
        return ProviderError("connection", str(exc), status=status)
    if isinstance(status, int):
        return ProviderError(kind_for_status(status), str(exc), status=status)
    return ProviderError("server_error", f"{name}: {exc}")
