"""POST /ask: an answer with checked citations, the contexts it used, and where time went."""

from __future__ import annotations

from fastapi import APIRouter

from services.rag.deps import ServiceDep
from services.rag.schemas import AskRequest, AskResponse, CitationOut, ContextOut

router = APIRouter()


@router.post("/ask")
async def ask(body: AskRequest, service: ServiceDep) -> AskResponse:
    result = await service.ask(body.question, k=body.k, filters=body.filters or None)
    return AskResponse(
        answer=result.answer.text,
        refused=result.answer.refused,
        refusal_reason=result.refusal_reason,
        citations=[CitationOut(**c.__dict__) for c in result.answer.citations],
        invalid_citations=result.answer.invalid_citations,
        support=result.answer.support,
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
        ],
        latency_ms=result.latency_ms,
        model=result.model,
    )
