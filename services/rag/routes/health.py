"""GET /healthz (alive) and GET /readyz (Qdrant answers, and the collection has chunks).

Readiness is what a load balancer or Kubernetes routes traffic by, so a failed check says why in
its body ("reason"), and never waits longer than KIT_PROBE_TIMEOUT_S for Qdrant.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import JSONResponse

from pipelines.ingest.index import StoreUnavailableError
from services.common.errors import ConfigError
from services.rag.deps import ServiceDep

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: ServiceDep) -> JSONResponse:
    collection = service.settings.collection
    timeout = service.settings.probe_timeout_s
    try:
        chunks = await asyncio.wait_for(asyncio.to_thread(service.count_chunks), timeout)
    except (StoreUnavailableError, ConfigError) as exc:
        return _not_ready(collection, str(exc))
    except TimeoutError:  # the request goes on in its thread until KIT_QDRANT_TIMEOUT_S
        return _not_ready(collection, f"Qdrant did not answer within {timeout}s")
    except Exception as exc:  # a probe reports, it does not raise
        return _not_ready(collection, f"{type(exc).__name__}: {exc}")
    if chunks == 0:
        return _not_ready(collection, "the collection is empty or missing; run `kit ingest`", 0)
    return JSONResponse({"status": "ready", "chunks": chunks, "collection": collection})


def _not_ready(collection: str, reason: str, chunks: int | None = None) -> JSONResponse:
    body = {"status": "not ready", "chunks": chunks, "collection": collection, "reason": reason}
    return JSONResponse(body, 503)
