"""Response helpers for the hot path: JSON bytes from orjson, and OpenAI-style server-sent events.

The gateway relays dicts it got from providers; encoding them with orjson straight to bytes skips
pydantic models, which would only re-validate what the provider already produced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response


def json_response(
    body: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status_code, headers, media_type="application/json")


async def sse(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """OpenAI's stream format: one `data: {json}` event per chunk, then `data: [DONE]`.

    An `{"error": ...}` chunk ends the stream without `[DONE]`, which only marks a complete answer.
    """
    async for chunk in chunks:
        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        if "error" in chunk:
            return
    yield b"data: [DONE]\n\n"
