"""How the RAG service's failures become HTTP responses: one place, one JSON error body.

    400  invalid JSON, or a path outside RAG_INGEST_ROOTS   (HTTPException, InvalidBody)
    404  no such ingestion job
    413  body over RAG_MAX_BODY_BYTES                    (services/common/request_limits.py)
    415  a body that is not JSON
    422  a body that breaks the API's schema                 (RequestValidationError)
    502  the model behind the gateway failed                 (GatewayRequestError)
    503  Qdrant is unreachable, or a setting is wrong        (StoreUnavailableError, ConfigError)
    500  anything else: the request id to quote, never a stack trace

Every body is `{"error": {"message", "type", "param", "code"}}`, as the gateway's.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from pipelines.ingest.index import StoreUnavailableError
from services.common.errors import ConfigError, KitError, error_body
from services.common.gateway_client import GatewayRequestError
from services.common.logging import get_logger

log = get_logger("rag")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayRequestError)
    async def model_failed(_: Request, exc: GatewayRequestError) -> JSONResponse:
        body = error_body(str(exc), "model_unavailable")
        return JSONResponse(body, status_code=502 if exc.status >= 500 else exc.status)

    @app.exception_handler(KitError)
    async def kit_error(_: Request, exc: KitError) -> JSONResponse:
        """503 while Qdrant is down or a setting is wrong: retry later, or fix what the message
        names (/readyz says the same); 500 for any other deliberate error."""
        status = 503 if isinstance(exc, StoreUnavailableError | ConfigError) else 500
        log.warning("request_failed", type=exc.type, status=status, error=str(exc))
        return JSONResponse(error_body(str(exc), exc.type), status)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        problems = [f"{_where(e['loc'])}: {e['msg']}" for e in errors]
        param = _where(errors[0]["loc"]) if errors else None
        message = "Invalid request: " + "; ".join(problems)
        # 422, FastAPI's status for a well-formed body that breaks the schema (the gateway uses
        # 400, as OpenAI does); the body is the kit's error shape either way.
        return JSONResponse(
            error_body(message, "invalid_request_error", "invalid_request", param), 422
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or f"http_{exc.status_code}"
        body = error_body(str(exc.detail), "invalid_request_error", code)
        return JSONResponse(body, exc.status_code, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = request.scope.get("state", {}).get("request_id", "unknown")
        log.exception("unhandled_error", error=type(exc).__name__)
        message = f"Internal error; quote request id {request_id} when reporting it."
        return JSONResponse(error_body(message, "server_error", "internal_error"), 500)


def _where(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """`("body", "filters", "lang")` -> "filters.lang": the field's path in the request body."""
    return ".".join(str(part) for part in loc if part != "body") or "body"
