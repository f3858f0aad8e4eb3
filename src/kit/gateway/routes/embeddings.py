"""POST /v1/embeddings: one text or a list of texts, embedded in batches by one deployment."""

from __future__ import annotations

import base64
import struct
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from kit.core.errors import ERROR_RESPONSES
from kit.gateway.deps import GatewayDep, KeyDep
from kit.gateway.errors import InvalidRequest
from kit.gateway.responses import json_response
from kit.gateway.schemas import EmbeddingRequest
from kit.web.request_limits import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, responses=ERROR_RESPONSES)

MAX_INPUTS = 2048  # OpenAI's own limit per request


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, key: KeyDep, gateway: GatewayDep) -> Response:
    texts = body.texts()
    if not texts or len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"input must hold 1 to {MAX_INPUTS} texts", param="input")
    if any(not text.strip() for text in texts):
        raise InvalidRequest("input texts must not be empty", param="input")
    outcome = await gateway.embed(key, body.model, texts)
    answer = outcome.body if body.encoding_format != "base64" else as_base64(outcome.body)
    return json_response(answer, headers={"x-kit-deployment": outcome.deployment})


def as_base64(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's base64 encoding: each vector as little-endian float32 bytes, base64-encoded
    (384 floats -> 1,536 bytes -> 2,048 characters, against ~7,000 as JSON numbers). A copy: the
    body may be the cached one."""
    data = [
        item | {"embedding": base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()}
        for item in body["data"]
        for vector in [item["embedding"]]
    ]
    return body | {"data": data}
