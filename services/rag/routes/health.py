"""GET /healthz (alive) and GET /readyz (the collection exists and has chunks)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import JSONResponse

from services.rag.deps import ServiceDep

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: ServiceDep) -> JSONResponse:
    try:
        chunks = await asyncio.to_thread(service.store.count)
    except Exception as exc:  # a probe reports, it does not raise
        return JSONResponse({"status": "not ready", "qdrant": f"{type(exc).__name__}"}, 503)
    ready = chunks > 0
    body = {
        "status": "ready" if ready else "not ready",
        "chunks": chunks,
        "collection": service.settings.collection,
    }
    return JSONResponse(body, 200 if ready else 503)
