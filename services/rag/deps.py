"""FastAPI dependencies of the RAG service, as typed aliases (async: no thread-pool hop)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.rag.service import RagService


async def get_service(request: Request) -> RagService:
    service: RagService = request.app.state.service
    return service


ServiceDep = Annotated[RagService, Depends(get_service)]
