"""GET /v1/models: the aliases clients may ask for (only those with an enabled deployment)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from kit.core.errors import ERROR_RESPONSES
from kit.gateway.deps import GatewayDep, KeyDep
from kit.gateway.responses import json_response

router = APIRouter(responses=ERROR_RESPONSES)


@router.get("/v1/models")
async def list_models(_: KeyDep, gateway: GatewayDep) -> Response:
    models = gateway.router.models
    data = [
        {
            "id": alias,
            "object": "model",
            "created": 0,
            "owned_by": "ai-engineering-kit",
            "task": models.task(alias),
            "deployments": [d.name for d in chain],
        }
        for alias, chain in models.chains.items()
    ]
    return json_response({"object": "list", "data": data})
