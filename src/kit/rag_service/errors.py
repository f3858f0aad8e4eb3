"""How the RAG service's failures become HTTP responses: one place, one JSON error body.

    400  invalid JSON; an /ingest path outside RAG_INGEST_ROOTS, or hidden   (HTTPException)
    401  no API key, or an unknown or revoked one           (AuthenticationFailed)
    403  a key without the scope the route needs           (PermissionDenied)
    404  no such ingestion job, or it expired
    409  an ingestion job is already queued or running     (IngestBusyError)
    413  body over RAG_MAX_BODY_BYTES                        (src/kit/web/request_limits.py)
    415  a body that is not JSON
    422  a body that breaks the API's schema                 (RequestValidationError)
    429  the gateway's rate limit or budget for this service (GatewayRequestError)
    502  the model behind the gateway failed                 (GatewayRequestError)
    503  the store is unreachable, or a setting is wrong     (StoreUnavailableError, ConfigError)
    500  anything else

Every body is `{"error": {"message", "type", "param", "code"}}`, as the gateway's. A 4xx says
what the caller did wrong and how to fix it. A 5xx says what failed and the request id to quote,
never why in detail: the exception's text, the gateway's or a provider's error body, the store's
address and server paths go to the log, on a line with the same request id, for the operator.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from kit.core.errors import ConfigError, KitError, error_body
from kit.core.logging import get_logger
from kit.llm.gateway_client import GatewayRequestError
from kit.rag.store import StoreUnavailableError

log = get_logger("rag")


class AuthenticationFailed(KitError):
    type = "authentication_error"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class PermissionDenied(KitError):
    type = "permission_error"


class IngestBusyError(KitError):
    """POST /ingest while a job is queued or running: one job at a time (jobs.py)."""

    type = "conflict"

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"An ingestion job is already queued or running (id {job_id}); one runs at a time. "
            f"Follow it with GET /ingest/{job_id} and post again once it is done or failed."
        )
        self.job_id = job_id


def request_id(request: Request) -> str:
    """The id RequestIdMiddleware gave this request (also on every log line about it)."""
    return str(request.scope.get("state", {}).get("request_id", "unknown"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuthenticationFailed)
    async def unauthenticated(_: Request, exc: AuthenticationFailed) -> JSONResponse:
        body = error_body(str(exc), exc.type, exc.code)
        return JSONResponse(body, 401, headers={"www-authenticate": "Bearer"})

    @app.exception_handler(PermissionDenied)
    async def forbidden(_: Request, exc: PermissionDenied) -> JSONResponse:
        return JSONResponse(error_body(str(exc), exc.type, "insufficient_scope"), 403)

    @app.exception_handler(IngestBusyError)
    async def busy(_: Request, exc: IngestBusyError) -> JSONResponse:
        body = error_body(str(exc), exc.type, "ingest_in_progress")
        return JSONResponse(body, 409, headers={"location": f"/ingest/{exc.job_id}"})

    @app.exception_handler(GatewayRequestError)
    async def model_failed(request: Request, exc: GatewayRequestError) -> JSONResponse:
        """The gateway's message may quote a provider's error body (an echoed prompt, an
        account id): it goes to the log; the caller gets what failed and the id to quote."""
        rid = request_id(request)
        log.warning("model_failed", status=exc.status, type=exc.type, error=str(exc))
        if exc.status == 429:
            message = "The model's rate limit or budget for this service is reached; retry later."
            return JSONResponse(error_body(message, "model_unavailable", "model_rate_limited"), 429)
        message = (
            f"The model behind the gateway failed (the gateway answered {exc.status}). "
            f"Retry later; if it persists, quote request id {rid} to the operator."
        )
        return JSONResponse(error_body(message, "model_unavailable", "model_failed"), 502)

    @app.exception_handler(KitError)
    async def kit_error(request: Request, exc: KitError) -> JSONResponse:
        """503 while the store is down or a setting is wrong: retry later (the operator fixes what
        the log names; /readyz is failing meanwhile); 500 for any other deliberate error."""
        status = 503 if isinstance(exc, StoreUnavailableError | ConfigError) else 500
        log.warning("request_failed", type=exc.type, status=status, error=str(exc))
        reason = public_reason(exc, f"request id {request_id(request)}")
        return JSONResponse(error_body(reason, exc.type), status)

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
        log.exception("unhandled_error", error=type(exc).__name__)
        message = f"Internal error; quote request id {request_id(request)} when reporting it."
        return JSONResponse(error_body(message, "server_error", "internal_error"), 500)


def public_reason(exc: BaseException, reference: str) -> str:
    """What a client may read about a server-side failure: what failed and what to do, with a
    `reference` (a request or job id) that finds the details in the log. Never the exception's
    text, which can hold the store's address, a server path or a library's internals."""
    if isinstance(exc, StoreUnavailableError):
        what = "The store where the documents are indexed is unreachable; retry in a moment."
    elif isinstance(exc, ConfigError):
        what = "The service's settings do not match its document collection."
    else:
        what = "The service failed unexpectedly."
    return f"{what} The service log has the details: quote {reference} to the operator."


def _where(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """`("body", "filters", "lang")` -> "filters.lang": the field's path in the request body."""
    return ".".join(str(part) for part in loc if part != "body") or "body"
