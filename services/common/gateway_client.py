"""The gateway client: how every other module of the kit calls a model (sync and async).

Two modes, one interface:

    client = GatewayClient.connect(settings)
    # GATEWAY_URL set   -> HTTP to that gateway (a deployment, another machine)
    # GATEWAY_URL unset -> the gateway app runs inside this process (EmbeddedServer), with an
    #                      ephemeral key; same API, same fallbacks, caching and metrics
    client.chat([{"role": "user", "content": "Hi"}], model="local")

It speaks the gateway's OpenAI-compatible HTTP API with httpx, so it knows nothing of providers;
errors come back as `GatewayRequestError` carrying the gateway's status, type and message.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

from services.common.embedded import EmbeddedServer
from services.common.errors import KitError
from services.common.llm import ChatMessage, ChatResult, Usage
from services.common.settings import KitSettings


class GatewayRequestError(KitError):
    """The gateway refused or failed a request; `status` and `type` are the gateway's."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(f"gateway answered {status} ({type_}): {message}")
        self.status = status
        self.type = type_


def _chat_body(
    messages: Sequence[ChatMessage],
    model: str | None,
    max_tokens: int,
    temperature: float,
    stream: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": list(messages),
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": stream,
    }
    if model is not None:
        body["model"] = model
    return body


def _chat_result(data: dict[str, Any]) -> ChatResult:
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    return ChatResult(
        text=choice["message"].get("content") or "",
        model=data.get("model", ""),
        usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
    )


def _embed_body(texts: Sequence[str], model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": list(texts)}
    if model is not None:
        body["model"] = model
    return body


def _vectors(response: httpx.Response) -> list[list[float]]:
    """The embeddings in input order (the API tags each with its index)."""
    _raise_for_error(response)
    rows = sorted(response.json()["data"], key=lambda row: row["index"])
    return [row["embedding"] for row in rows]


def _delta_text(line: str) -> str | None:
    """The text in one server-sent-event line, "" for none, None at the end of the stream."""
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    chunk = json.loads(payload)
    return "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices", []))


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        raise GatewayRequestError(response.status_code, error["type"], error["message"])
    except (ValueError, KeyError, TypeError):
        raise GatewayRequestError(response.status_code, "http_error", response.text[:200]) from None


def start_embedded_gateway(settings: KitSettings) -> tuple[EmbeddedServer, str]:
    """Start the gateway app in this process, reachable only with a key made for this client."""
    from services.common.settings import load_settings
    from services.gateway.app import create_app
    from services.gateway.auth import ApiKey, KeyStore, hash_key, new_key
    from services.gateway.settings import GatewaySettings

    key = new_key()
    gateway_settings = load_settings(
        GatewaySettings, data_dir=settings.data_dir, cache_dir=settings.cache_dir, auth="keys"
    )
    keys = KeyStore([ApiKey(id="embedded", sha256=hash_key(key))])
    server = EmbeddedServer(create_app(gateway_settings, keys=keys)).start()
    # Wait until the local models are loaded, as a load balancer waits for /readyz: loading
    # them while answering would slow both down.
    deadline = time.monotonic() + 300
    while httpx.get(f"{server.url}/readyz", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            server.stop()
            raise GatewayRequestError(503, "not_ready", "the embedded gateway never became ready")
        time.sleep(0.05)
    return server, key


class GatewayClient:
    """Synchronous client; also a context manager that stops an embedded gateway on exit."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        server: EmbeddedServer | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self._server = server

    @classmethod
    def connect(cls, settings: KitSettings) -> GatewayClient:
        if settings.gateway_url is not None:
            key = settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None
            return cls(str(settings.gateway_url), api_key=key)
        server, key = start_embedded_gateway(settings)
        return cls(server.url, api_key=key, server=server)

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult:
        body = _chat_body(messages, model, max_tokens, temperature, stream=False)
        response = self._http.post("/v1/chat/completions", json=body)
        _raise_for_error(response)
        return _chat_result(response.json())

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        body = _chat_body(messages, model, max_tokens, temperature, stream=True)
        with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for_error(response)
            for line in response.iter_lines():
                text = _delta_text(line)
                if text is None:
                    return
                if text:
                    yield text

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        response = self._http.post("/v1/embeddings", json=_embed_body(texts, model))
        return _vectors(response)

    def close(self) -> None:
        self._http.close()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncGatewayClient:
    """The same client for async code (the RAG service's request handlers)."""

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout_s: float = 300.0
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s
        )

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult:
        body = _chat_body(messages, model, max_tokens, temperature, stream=False)
        response = await self._http.post("/v1/chat/completions", json=body)
        _raise_for_error(response)
        return _chat_result(response.json())

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> AsyncIterator[str]:
        body = _chat_body(messages, model, max_tokens, temperature, stream=True)
        async with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for_error(response)
            async for line in response.aiter_lines():
                text = _delta_text(line)
                if text is None:
                    return
                if text:
                    yield text

    async def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        response = await self._http.post("/v1/embeddings", json=_embed_body(texts, model))
        return _vectors(response)

    async def aclose(self) -> None:
        await self._http.aclose()
