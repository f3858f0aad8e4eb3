"""FastAPI dependencies of the RAG service, as typed aliases (async: no thread-pool hop)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipelines.drift.store import QueryLog
from services.rag.service import RagService


async def get_service(request: Request) -> RagService:
    service: RagService = request.app.state.service
    return service


ServiceDep = Annotated[RagService, Depends(get_service)]


async def get_query_log(request: Request) -> QueryLog | None:
    """The sample store of questions for drift monitoring; None when RAG_QUERY_LOG is off."""
    query_log: QueryLog | None = request.app.state.query_log
    return query_log


QueryLogDep = Annotated[QueryLog | None, Depends(get_query_log)]
