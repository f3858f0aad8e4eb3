"""POST /ingest starts an ingestion job; GET /ingest/{id} reports it. Both need an admin key.

Paths are named relative to KIT_DOCS_ROOT ("fastapi-docs/docs/tutorial"), as document ids are,
and must lie inside RAG_INGEST_ROOTS once `..` and symlinks are resolved, and not be hidden: an
HTTP client must not be able to make the server read any file it can reach. A path the OS cannot
even look up (a NUL byte, a name over 255 bytes) is the client's mistake, so it is a 400 too, not
the OSError it raises. Messages show a path as the caller wrote it, or root-relative: never where
the server keeps its files.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException

from kit.core.errors import ERROR_RESPONSES
from kit.rag_service.deps import IngestKey, ServiceDep
from kit.rag_service.jobs import IngestJob
from kit.rag_service.schemas import IngestJobOut, IngestRequest
from kit.rag_service.service import RagService
from kit.web.request_limits import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, responses=ERROR_RESPONSES)


def _out(job: IngestJob) -> IngestJobOut:
    return IngestJobOut(
        id=job.id, status=job.status, paths=job.paths, report=job.report, error=job.error
    )


def _shown(raw: str) -> str:
    return raw if len(raw) <= 200 else raw[:200] + "..."  # echo a path, not a megabyte


def _checked(raw: str, service: RagService) -> Path:
    """The absolute path `raw` (relative to KIT_DOCS_ROOT) names, or a 400 saying what is wrong."""
    shown, docs = _shown(raw), service.docs_root
    try:
        path = (docs.path / raw).resolve()  # an absolute `raw` replaces the root: checked below
        exists = path.exists()
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        reason = exc.strerror if isinstance(exc, OSError) else exc
        raise HTTPException(400, f"{shown!r} is not a usable path ({reason})") from None
    if not any(path.is_relative_to(root) for root in service.ingest_roots):
        allowed = ", ".join(repr(docs.id_of(root)) for root in service.ingest_roots)
        raise HTTPException(
            400,
            f"{shown} is outside RAG_INGEST_ROOTS. Name a path relative to the docs root "
            f"(KIT_DOCS_ROOT) that lies inside one of these folders of it: {allowed}.",
        )
    if not exists:
        raise HTTPException(400, f"{shown} does not exist below the docs root (KIT_DOCS_ROOT)")
    if any(part.startswith(".") for part in path.relative_to(docs.path).parts):
        # `kit ingest .env` is an operator's explicit choice; over HTTP, a hidden file or folder
        # (.env, .git, .ssh) is never a document someone meant to publish.
        raise HTTPException(400, f"{shown} is hidden (a name starts with '.'): not ingested")
    return path


@router.post("/ingest", status_code=202)
async def start_ingest(body: IngestRequest, key: IngestKey, service: ServiceDep) -> IngestJobOut:
    paths = [_checked(raw, service) for raw in body.paths]
    shown = [_shown(raw) for raw in body.paths]
    return _out(service.jobs.submit(paths, shown, body.prune, by=key.id))


@router.get("/ingest/{job_id}")
async def ingest_status(job_id: str, _: IngestKey, service: ServiceDep) -> IngestJobOut:
    job = service.jobs.get(job_id)
    if job is None:
        ttl = service.settings.ingest_job_ttl_s
        raise HTTPException(
            404,
            f"No ingestion job {_shown(job_id)!r}: it never existed, or it finished more than "
            f"RAG_INGEST_JOB_TTL_S ({ttl} s) ago and has expired.",
        )
    return _out(job)
