"""Any server that speaks the OpenAI API: OpenAI itself, vLLM, Ollama, llama.cpp's server, ...

This is the gateway's fast path: a direct aiohttp call, JSON encoded and parsed by orjson.
For servers that already speak OpenAI there is nothing to translate, so we do not pay for
LiteLLM's translation layer (about 2.4 ms of CPU per call, measured on loopback); providers that
need translation (Anthropic, Gemini, ...) go through LiteLLM instead (`litellm_provider.py`).

Why aiohttp and not httpx (which the rest of the kit uses): under load, httpx's connection pool
scans every pooled connection on each request; profiling the gateway at 32 connections showed
75% of its CPU there. aiohttp's pool does not, and the gateway serves several times more.

Each call carries the W3C `traceparent` of the router's client span for this try, so a server
that traces (vLLM, a proxy) continues the request's trace. OpenTelemetry's aiohttp
instrumentation would do the same, but it has no release for the SDK the kit pins
(opentelemetry-instrumentation-aiohttp-client stops at 0.66b1, the SDK 1.45.2 needs 0.66b2).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from opentelemetry.propagate import inject

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

OPENAI_API_BASE = "https://api.openai.com/v1"


class OpenAICompatibleProvider:
    def __init__(self, deployment: ResolvedDeployment, client: aiohttp.ClientSession) -> None:
        self.model = deployment.spec.model
        self.base = (deployment.api_base or OPENAI_API_BASE).rstrip("/")
        self.client = client  # shared by every deployment: one connection pool per gateway
        self.headers = {"content-type": "application/json"}
        if deployment.api_key is not None:
            self.headers["authorization"] = f"Bearer {deployment.api_key.get_secret_value()}"

    async def chat(self, call: ChatCall, timeout: float) -> ChatAnswer:
        body = {**_forwarded(call), "model": self.model, "messages": call.messages}
        data = await self._post("/chat/completions", body, timeout)
        choices = data.get("choices")
        if not (
            isinstance(choices, list)
            and choices
            and isinstance(choices[0], dict)
            and "message" in choices[0]
        ):
            raise ProviderError("server_error", "upstream answer has no choices[0].message")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        return ChatAnswer(
            data,
            reported_tokens(usage, "prompt_tokens"),
            reported_tokens(usage, "completion_tokens"),
        )

    async def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[dict[str, Any]]:
        body = {
            **_forwarded(call),
            "model": self.model,
            "messages": call.messages,
            "stream": True,
            "stream_options": {"include_usage": True},  # so streamed tokens can be accounted for
        }
        # A stream may run for minutes; the timeout bounds the wait for each piece, not the total.
        limit = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        try:
            async with self.client.post(
                f"{self.base}/chat/completions",
                data=orjson.dumps(body),
                headers=self._headers(),
                timeout=limit,
            ) as response:
                if response.status >= 400:
                    raise _error_from(response.status, await response.read(), response.headers)
                async for raw in response.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, "event:" lines
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        break
                    try:
                        yield orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        raise ProviderError("server_error", "malformed stream chunk") from None
        except TimeoutError as exc:
            raise ProviderError("timeout", f"no data for {timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", f"{type(exc).__name__}: {exc}") from exc

    async def embed(self, texts: list[str], timeout: float) -> EmbedAnswer:
        data = await self._post("/embeddings", {"model": self.model, "input": texts}, timeout)
        try:
            rows = sorted(data["data"], key=lambda row: row["index"])
            vectors = [row["embedding"] for row in rows]
        except (KeyError, TypeError):
            raise ProviderError("server_error", "upstream answer has no data[].embedding") from None
        if len(vectors) != len(texts):
            raise ProviderError("server_error", f"{len(vectors)} vectors for {len(texts)} inputs")
        return EmbedAnswer(vectors, (data.get("usage") or {}).get("prompt_tokens", 0))

    async def _post(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            async with self.client.post(
                f"{self.base}{path}",
                data=orjson.dumps(body),
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                content = await response.read()
                if response.status >= 400:
                    raise _error_from(response.status, content, response.headers)
        except TimeoutError as exc:
            raise ProviderError("timeout", f"no answer within {timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", f"{type(exc).__name__}: {exc}") from exc
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise ProviderError("server_error", "upstream answered malformed JSON") from None
        if not isinstance(data, dict):
            raise ProviderError("server_error", "upstream answered JSON that is not an object")
        return data

    def _headers(self) -> dict[str, str]:
        """The deployment's headers and the current trace context (`traceparent`)."""
        headers = dict(self.headers)
        inject(headers)
        return headers

    async def aclose(self) -> None:
        """The shared client is closed by the gateway's lifespan, not per deployment."""


def _forwarded(call: ChatCall) -> dict[str, Any]:
    """Only the allowlisted model parameters (src/kit/gateway/schemas.py) go upstream."""
    return {k: v for k, v in call.params.items() if k in FORWARDED_CHAT_PARAMS}


def _error_from(status: int, content: bytes, headers: Mapping[str, str]) -> ProviderError:
    """Turn an upstream error response into a `ProviderError`, keeping its message."""
    message = f"upstream answered {status}"
    try:
        detail = json.loads(content)["error"]["message"]
        message = f"{message}: {detail}"
    except (ValueError, KeyError, TypeError):
        pass
    retry_after = None
    if "retry-after" in headers:
        try:
            retry_after = float(headers["retry-after"])
        except ValueError:
            retry_after = None  # an HTTP date; we do not wait for those
    return ProviderError(kind_for_status(status), message, status=status, retry_after=retry_after)
