"""The provider interface: how the gateway calls one deployment, whatever serves it.

Each provider turns an OpenAI-style request into a call to its backend and returns OpenAI-style
dicts, so routing, caching and accounting never see a provider's own format. Failures are raised
as `ProviderError` with a `kind` that the router uses to decide: retry, fall back, or give up.

    kind           examples                                   router does
    bad_request    upstream 400/404/422: the request is wrong  returns 400 to the client at once
    rate_limit     upstream 429                                retries, then falls back
    server_error   upstream 5xx, malformed JSON                retries, then falls back
    timeout        no answer within the deployment's timeout   falls back (retries if configured)
    connection     refused, DNS, TLS                           retries, then falls back
    auth           upstream 401/403: our key is wrong          falls back (a config problem)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ErrorKind = Literal["bad_request", "rate_limit", "server_error", "timeout", "connection", "auth"]


class ProviderError(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


def kind_for_status(status: int) -> ErrorKind:
    """Classify an upstream HTTP status the way the table above does."""
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status in (408, 504):
        return "timeout"
    if 400 <= status < 500:
        return "bad_request"
    return "server_error"


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One chat request for one deployment: messages plus OpenAI parameters (temperature, ...)."""

    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    body: dict[str, Any]  # an OpenAI `chat.completion` object
    # As the provider reported them; None when it did not (the gateway then charges an estimate).
    prompt_tokens: int | None
    completion_tokens: int | None


def reported_tokens(usage: Any, name: str) -> int | None:
    """`usage[name]` when an upstream reported a sane count, else None."""
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class EmbedAnswer:
    vectors: list[list[float]]
    prompt_tokens: int


class Provider(Protocol):
    """One deployment's backend. Streams yield OpenAI `chat.completion.chunk` dicts; the last
    one carries `usage` (and no choices), so the gateway can account for streamed tokens."""

    async def chat(self, call: ChatCall, timeout: float) -> ChatAnswer: ...

    def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[dict[str, Any]]: ...

    async def embed(self, texts: list[str], timeout: float) -> EmbedAnswer: ...

    async def aclose(self) -> None: ...
