"""The gateway client: how every other module of the kit calls a model (sync and async).

    client = GatewayClient("http://127.0.0.1:8000", api_key=KEY)
    client.chat([{"role": "user", "content": "Hi"}], model="local")

It speaks the gateway's OpenAI-compatible HTTP API with httpx, so it knows nothing of providers
and nothing of how the gateway runs; errors come back as `GatewayRequestError` carrying the
gateway's status, type and message. Which gateway to talk to (GATEWAY_URL, or one started in
this process when it is unset) is decided by `kit.runtime.connect_gateway`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

from kit.core.errors import KitError
from kit.core.ports import ChatMessage, ChatResult, Usage


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


class GatewayClient:
    """Synchronous client, and a context manager that closes it (and `on_close`) on exit.

    `on_close` runs after the HTTP client closes: `kit.runtime.connect_gateway` stops the gateway
    it started in this process there, so one `with` block owns both."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        options: dict[str, Any] = {
            "base_url": base_url.rstrip("/"),
            "headers": headers,
            "timeout": timeout_s,
        }
        self._http = httpx.Client(**options)
        # For `achat`: an async client shares no connections with the sync one, and is bound to
        # the event loop that first uses it, so it is made then, and closed by `aclose`.
        self._async_options = options
        self._async_http: httpx.AsyncClient | None = None
        self._on_close = on_close

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

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult:
        """`chat` for async code (the RAG service's handlers): the event loop keeps serving."""
        if self._async_http is None:
            self._async_http = httpx.AsyncClient(**self._async_options)
        body = _chat_body(messages, model, max_tokens, temperature, stream=False)
        response = await self._async_http.post("/v1/chat/completions", json=body)
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

    async def aclose(self) -> None:
        """Close the async client `achat` made, from the event loop that used it."""
        if self._async_http is not None:
            await self._async_http.aclose()
            self._async_http = None

    def close(self) -> None:
        self._http.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
