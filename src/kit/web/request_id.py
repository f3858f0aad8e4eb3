"""Give every HTTP request an id, put it on every log line, and send it back to the caller.

A client (or a load balancer) may send `X-Request-ID`; a safe value is kept so one id follows a
request across services, otherwise a new one is made. The id is bound to the logging context for
the duration of the request and returned in the response's `X-Request-ID` header, so a user who
reports an error can quote the id and an operator can find every line about it.

A plain ASGI middleware (not `BaseHTTPMiddleware`), so streaming responses pass through untouched.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit.core.logging import bind_context, clear_context

HEADER = "x-request-id"
# Accept ids a person could paste into a search box; anything else could inject into log lines.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def incoming_request_id(scope: Scope) -> str:
    """The caller's id when it is safe to log, else a fresh one."""
    for name, value in scope.get("headers", []):
        if name == HEADER.encode():
            candidate = bytes(value).decode("latin-1")
            if _SAFE_ID.match(candidate):
                return candidate
    return new_request_id()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        clear_context()
        bind_context(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            clear_context()
