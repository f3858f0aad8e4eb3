"""FastAPI dependencies of the RAG service, as typed aliases (async: no thread-pool hop).

    AskKey      the caller's key, with the "ask" scope       POST /ask
    IngestKey   the caller's key, with the "ingest" scope    POST /ingest, GET /ingest/{id}

A key is sent as `Authorization: Bearer <key>` and looked up in RAG_KEYS_FILE: none or an unknown
one is a 401, a key without the route's scope a 403 naming the scope and how to get it. The
probes and /metrics take no key (a kubelet and Prometheus call them). `HTTPBearer` is what puts
the scheme in the OpenAPI schema, so /docs has an "Authorize" button.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kit.core.keys import KeyStore
from kit.core.logging import bind_context
from kit.drift.store import QueryLog
from kit.rag_service.auth import OPEN_ACCESS, RagKey, Scope
from kit.rag_service.errors import AuthenticationFailed, PermissionDenied
from kit.rag_service.service import RagService

# auto_error=False: a missing header reaches `caller` as None, which answers with the kit's
# error body and message rather than FastAPI's bare {"detail": "Not authenticated"}.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="RagKey",
    description="A RAG key (`kit rag keys create --id NAME`; `--admin` adds /ingest).",
)


async def get_service(request: Request) -> RagService:
    service: RagService = request.app.state.service
    return service


ServiceDep = Annotated[RagService, Depends(get_service)]


async def get_query_log(request: Request) -> QueryLog | None:
    """The sample store of questions for drift monitoring; None when RAG_QUERY_LOG is off."""
    query_log: QueryLog | None = request.app.state.query_log
    return query_log


QueryLogDep = Annotated[QueryLog | None, Depends(get_query_log)]


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> RagKey:
    """The caller's key from `Authorization: Bearer <key>`, or everyone's when RAG_AUTH=open."""
    if request.app.state.settings.auth == "open":
        return OPEN_ACCESS
    if credentials is None:
        raise AuthenticationFailed(
            "Missing API key: send the header 'Authorization: Bearer <key>'. An operator "
            "creates keys with `kit rag keys create --id NAME`.",
            "missing_api_key",
        )
    keys: KeyStore[RagKey] = request.app.state.keys
    key = keys.find(credentials.credentials.strip())
    if key is None:
        raise AuthenticationFailed(
            "Invalid API key: it is not in this service's keys file, or it was revoked. RAG "
            "keys start with 'sk-kit-rag-'; a gateway key does not open this service.",
            "invalid_api_key",
        )
    bind_context(key=key.id)  # every log line of this request says whose it was
    return key


def requires(scope: Scope) -> Callable[[RagKey], Awaitable[RagKey]]:
    """A dependency that lets through only keys carrying `scope`."""

    async def check(key: Annotated[RagKey, Depends(caller)]) -> RagKey:
        if scope not in key.scopes:
            fix = (
                "Only admin keys may ingest: an operator creates one with "
                "`kit rag keys create --id NAME --admin`."
                if scope == "ingest"
                else "An operator creates a key that may ask with `kit rag keys create --id NAME`."
            )
            raise PermissionDenied(f"The key {key.id!r} lacks the {scope!r} scope. {fix}")
        return key

    return check


AskKey = Annotated[RagKey, Depends(requires("ask"))]
IngestKey = Annotated[RagKey, Depends(requires("ingest"))]
