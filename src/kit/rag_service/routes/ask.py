"""POST /ask: an answer with checked citations, and where time went (a key with the ask scope).

The retrieved chunks' full text (`contexts`) is returned only to a caller who asks for it
(`include_contexts`): otherwise a refusal, a question the documents do not answer, would still
hand over the passages nearest to it, and anyone could page through the index by asking.

The question is also appended to the query log for drift monitoring, after the response is sent
(a background task, run in the thread pool: file I/O never blocks the event loop, and never
delays an answer). It is logged here, in the route, so that only API traffic is recorded, not the
questions of `kit ask` or of an evaluation run, which call the service directly.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, BackgroundTasks

from kit.core.errors import ERROR_RESPONSES
from kit.core.logging import get_logger
from kit.drift.store import QueryLog, QueryRecord
from kit.rag_service.deps import AskKey, QueryLogDep, ServiceDep
from kit.rag_service.schemas import AskRequest, AskResponse, CitationOut, ContextOut
from kit.web.request_limits import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
log = get_logger("rag")


@router.post("/ask")
async def ask(
    body: AskRequest,
    _: AskKey,
    service: ServiceDep,
    query_log: QueryLogDep,
    background: BackgroundTasks,
) -> AskResponse:
    result = await service.ask(body.question, k=body.k, filters=body.filters or None)
    if query_log is not None and query_log.sampled():
        record = QueryRecord(
            ts=datetime.now(UTC),
            question=body.question,
            top_score=result.relevance,
            refused=result.answer.refused,
            collection=service.settings.collection,
            embedder=service.embedder.name,
        )
        background.add_task(_append, query_log, record)
    return AskResponse(
        answer=result.answer.text,
        refused=result.answer.refused,
        refusal_reason=result.refusal_reason,
        citations=[CitationOut(**c.__dict__) for c in result.answer.citations],
        invalid_citations=result.answer.invalid_citations,
        support=result.answer.support,
        citation_status=result.answer.citation_status,
        contexts=[
            ContextOut(
                chunk_id=h.chunk_id,
                doc_id=h.doc_id,
                title=h.title,
                section=list(h.heading_path),
                score=h.score,
                text=h.text,
            )
            for h in result.contexts
        ]
        if body.include_contexts
        else None,
        latency_ms=result.latency_ms,
        model=result.model,
    )


def _append(query_log: QueryLog, record: QueryRecord) -> None:
    """A full disk or a read-only folder must not fail answers: warn, once per question."""
    try:
        query_log.append(record)
    except OSError as exc:
        log.warning("query_log_write_failed", path=str(query_log.path), error=str(exc))
