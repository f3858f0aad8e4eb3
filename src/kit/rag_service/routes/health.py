"""GET /healthz (alive) and GET /readyz (the store answers, and the collection has chunks).

Readiness is what a load balancer or Kubernetes routes traffic by, so a failed check says why in
its body ("reason"), and never waits longer than KIT_PROBE_TIMEOUT_S for the store (Qdrant or
Postgres). Both take no key (a kubelet calls them), so the reason names the server to look at,
never the failure's own text (the store's address, an exception from a library): that goes to
the log, on a line with the request id the reason quotes.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from kit.core.errors import ConfigError
from kit.core.logging import get_logger
from kit.rag.store import StoreUnavailableError
from kit.rag_service.deps import ServiceDep
from kit.rag_service.errors import request_id

router = APIRouter()
_STORE_NAMES = {"qdrant": "Qdrant", "pgvector": "Postgres"}  # KIT_STORE: the server to look at
log = get_logger("rag")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    collection = service.settings.collection
    store = _STORE_NAMES[service.settings.store]
    timeout = service.settings.probe_timeout_s
    see_log = f"the service log has the details (request id {request_id(request)})"
    try:
        chunks = await asyncio.wait_for(asyncio.to_thread(service.count_chunks), timeout)
    except StoreUnavailableError as exc:
        log.warning("not_ready", error=str(exc))
        return _not_ready(collection, f"{store} is unreachable; {see_log}")
    except ConfigError as exc:
        log.error("not_ready", error=str(exc))
        reason = f"the collection does not match this service's settings; {see_log}"
        return _not_ready(collection, reason)
    except TimeoutError:  # the request goes on in its thread until the store's own timeout
        return _not_ready(collection, f"{store} did not answer within {timeout}s")
    except Exception:  # a probe reports, it does not raise
        log.exception("not_ready")
        return _not_ready(collection, f"the readiness check failed; {see_log}")
    if chunks == 0:
        return _not_ready(collection, "the collection is empty or missing; run `kit ingest`", 0)
    return JSONResponse({"status": "ready", "chunks": chunks, "collection": collection})


def _not_ready(collection: str, reason: str, chunks: int | None = None) -> JSONResponse:
    body = {"status": "not ready", "chunks": chunks, "collection": collection, "reason": reason}
    return JSONResponse(body, 503)
