"""What a request body must be before a route sees it: small enough, and strict, shallow JSON.

    BodySizeLimitMiddleware   413 over `max_bytes`: on the declared Content-Length (nothing read)
                              and while reading (a chunked upload declares no length)
    StrictJSONRoute           400 for a body that is not valid JSON, invalid UTF-8, a lone UTF-16
                              surrogate, NaN, nesting deeper than MAX_JSON_DEPTH or not an object;
                              415 for a body sent as another content type

Both answer with the services' error body, before any route, model or validation code runs. The
strictness is what keeps bad input a 4xx: Python's `json` accepts lone surrogates, NaN and 1e400
and then fails deep inside (orjson refuses to re-encode them, so a relayed body became a 500).
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit.core.errors import error_body

# No request of the kit needs more than a dozen levels (an OpenAI `tools` JSON schema is the
# deepest); 64 leaves room and stays far below orjson's encoder limit of 255, which a relayed
# body must pass, and its decoder limit of 1,024.
MAX_JSON_DEPTH = 64


class InvalidBody(HTTPException):
    """A body refused before parsing finished. An `HTTPException`, because FastAPI re-raises those
    from its body parsing untouched (anything else becomes a vague "error parsing the body")."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_json") -> None:
        super().__init__(status, message)
        self.code = code


class BodySizeLimitMiddleware:
    """`fix` finishes the 413 message: how the client or the operator gets past the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, fix: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.fix = fix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps(
            error_body(
                f"Request body is larger than the limit of {self.max_bytes} bytes; {self.fix}",
                "invalid_request_error",
                "request_too_large",
            )
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class StrictJSONRoute(APIRoute):
    """`APIRouter(route_class=StrictJSONRoute)`: its routes' bodies are parsed by `parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        expects_body = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            request = _StrictRequest(request.scope, request.receive)
            if expects_body:
                await _check_content_type(request)
            return await handler(request)

        return strict_handler


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON object from a request body, or `InvalidBody` saying what is wrong with it."""
    try:
        # orjson refuses what `json` lets through: invalid UTF-8, lone surrogates ("\ud800"),
        # NaN and Infinity, and nesting past 1,024 (where `json` would hit a RecursionError).
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _explain(body, exc) from None
    if not isinstance(value, dict):
        raise InvalidBody(
            f"The request body must be a JSON object ({{...}}), not a JSON {type(value).__name__}."
        )
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise _too_deep()
    return value


def _explain(body: bytes, exc: orjson.JSONDecodeError) -> InvalidBody:
    """orjson's message, made specific for the two causes it words confusingly."""
    try:
        body.decode("utf-8")  # only on this error path: a valid body is never decoded twice
    except UnicodeDecodeError as bad:
        return InvalidBody(
            f"The request body is not valid UTF-8 (byte {bad.start} is "
            f"{body[bad.start : bad.start + 1]!r}); encode the JSON as UTF-8."
        )
    if exc.msg.startswith("depth limit"):
        return _too_deep()
    return InvalidBody(
        f"The request body is not valid JSON: {exc}. Note that NaN, Infinity and unpaired "
        "\\ud800-\\udfff escapes are not JSON either."
    )


def _too_deep() -> InvalidBody:
    return InvalidBody(
        f"The request body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep; "
        "flatten it.",
        code="json_too_deep",
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels. A loop, not recursion: the input decides
    the depth, and recursing on it is how a body turns into a RecursionError."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


async def _check_content_type(request: Request) -> None:
    """Say what is wrong with an empty or non-JSON body, where validation would only say that
    "body" is missing or "should be a valid dictionary". A body without a Content-Type is refused
    too, as FastAPI does: browsers send those cross-origin without asking first (CSRF)."""
    if not await request.body():
        raise InvalidBody("The request body is empty; send a JSON object.", code="missing_body")
    content_type = request.headers.get("content-type", "")
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        raise InvalidBody(
            f"Content-Type {content_type or '(none)'!r} is not JSON; send the body as JSON with "
            "'Content-Type: application/json'.",
            status=415,
            code="unsupported_media_type",
        )
