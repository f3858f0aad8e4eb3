"""POST /v1/embeddings: one text or a list of texts, embedded in batches by one deployment."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from services.gateway.deps import GatewayDep, KeyDep
from services.gateway.errors import InvalidRequest
from services.gateway.responses import json_response
from services.gateway.schemas import EmbeddingRequest

router = APIRouter()

MAX_INPUTS = 2048  # OpenAI's own limit per request


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, key: KeyDep, gateway: GatewayDep) -> Response:
    texts = body.texts()
    if not texts or len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"input must hold 1 to {MAX_INPUTS} texts", param="input")
    if any(not text.strip() for text in texts):
        raise InvalidRequest("input texts must not be empty", param="input")
    outcome = await gateway.embed(key, body.model, texts)
    return json_response(outcome.body, headers={"x-kit-deployment": outcome.deployment})
