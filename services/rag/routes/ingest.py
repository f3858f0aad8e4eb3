"""POST /ingest starts an ingestion job; GET /ingest/{id} reports its status and report.

Only paths under RAG_INGEST_ROOTS may be ingested: an HTTP client must not be able to make the
server read any file it can reach. A path the OS cannot even look up (a NUL byte, a name over 255
bytes) is the client's mistake, so it is a 400 too, not the OSError it raises.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException

from services.common.errors import ERROR_RESPONSES
from services.common.request_limits import StrictJSONRoute
from services.rag.deps import ServiceDep
from services.rag.schemas import IngestJobOut, IngestRequest
from services.rag.service import IngestJob

router = APIRouter(route_class=StrictJSONRoute, responses=ERROR_RESPONSES)


def _out(job: IngestJob) -> IngestJobOut:
    return IngestJobOut(
        id=job.id, status=job.status, paths=job.paths, report=job.report, error=job.error
    )


@router.post("/ingest", status_code=202)
async def start_ingest(body: IngestRequest, service: ServiceDep) -> IngestJobOut:
    roots = [root.resolve() for root in service.settings.ingest_roots]
    paths = []
    for raw in body.paths:
        shown = raw if len(raw) <= 200 else raw[:200] + "..."  # echo a path, not a megabyte
        try:
            path = Path(raw).resolve()
            exists = path.exists()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise HTTPException(400, f"{shown!r} is not a usable path ({reason})") from None
        if not any(path.is_relative_to(root) for root in roots):
            raise HTTPException(
                400, f"{shown} is outside RAG_INGEST_ROOTS ({', '.join(map(str, roots))})"
            )
        if not exists:
            raise HTTPException(400, f"{shown} does not exist")
        paths.append(path)
    return _out(service.start_ingest(paths, body.prune))


@router.get("/ingest/{job_id}")
async def ingest_status(job_id: str, service: ServiceDep) -> IngestJobOut:
    job = service.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"No ingestion job {job_id}")
    return _out(job)
