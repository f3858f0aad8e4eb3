"""Every failure the gateway returns, and the one place they become HTTP responses.

    GatewayError                       body: {"error": {"message", "type", "code", "param"}}
    ├── InvalidRequest        400/413  the request breaks a limit; the message says which to change
    ├── AuthenticationFailed  401      no key, or an unknown one
    ├── RateLimited           429      the key's requests or tokens per minute; with Retry-After
    ├── BudgetExceeded        429      the key's USD budget would be passed (insufficient_quota)
    ├── ConcurrencyLimited    429      the key has its limit of requests in flight; Retry-After 1
    ├── UnknownModel          404      no such alias, or none of its deployments is enabled
    ├── UpstreamBadRequest    400      a provider refused the request itself: it would fail anywhere
    └── AllDeploymentsFailed  502/504  every deployment failed (504 when the last one timed out)

Bodies that are too large, not JSON or too deeply nested are refused earlier, with the same body
(src/kit/web/request_limits.py). A client never sees a stack trace: anything else becomes a
500 with the request id to quote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from kit.core.errors import KitError
from kit.core.errors import error_body as error_body  # re-exported: service.py uses it
from kit.core.logging import get_logger
from kit.gateway.responses import json_response

if TYPE_CHECKING:
    from kit.gateway.providers.base import ProviderError

log = get_logger("gateway")

# What a client is told about a field the gateway does not accept (src/kit/gateway/schemas.py).
REFUSED_FIELD = (
    "not accepted by this gateway. It forwards only the OpenAI parameters it lists (see its "
    "API docs at /docs); where a request goes and with which credentials is set by the "
    "gateway's operator, never by a request."
)


class GatewayError(KitError):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, headers={"retry-after": str(max(1, round(retry_after)))})


class BudgetExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class ConcurrencyLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "concurrency_limit_exceeded"

    def __init__(self, message: str) -> None:
        # A request in flight typically ends within seconds: retry soon.
        super().__init__(message, headers={"retry-after": "1"})


class UnknownModel(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str, available: list[str], disabled: dict[str, str]) -> None:
        hint = f" Available: {', '.join(available)}." if available else ""
        if disabled:
            hint += " Disabled deployments: " + "; ".join(f"{k} ({v})" for k, v in disabled.items())
        super().__init__(f"The model {model!r} is not served by this gateway.{hint}")


class UpstreamBadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "upstream_rejected"


class AllDeploymentsFailed(GatewayError):
    type = "upstream_error"

    def __init__(
        self, alias: str, errors: list[tuple[str, ProviderError]], retry_after: float | None
    ) -> None:
        tried = "; ".join(f"{name}: {error}" for name, error in errors) or "all cooling down"
        last = errors[-1][1].kind if errors else None
        self.status = 504 if last == "timeout" else 502
        self.code = "upstream_timeout" if last == "timeout" else "upstream_failed"
        headers = {"retry-after": str(max(1, round(retry_after)))} if retry_after else None
        super().__init__(f"No deployment of {alias!r} answered. Tried: {tried}", headers=headers)
        self.errors = errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> Response:
        body = error_body(str(exc), exc.type, exc.code, getattr(exc, "param", None))
        return json_response(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: "
            + (REFUSED_FIELD if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()
        ]
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        body = error_body(
            "Invalid request: " + "; ".join(problems),
            "invalid_request_error",
            "invalid_request",
            param,
        )
        return json_response(body, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        # A body refused by kit.web.request_limits names its own code ("invalid_json").
        code = getattr(exc, "code", None) or f"http_{exc.status_code}"
        body = error_body(str(exc.detail), "invalid_request_error", code)
        return json_response(body, status_code=exc.status_code, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "unknown")
        log.exception("unhandled_error", error=type(exc).__name__)
        message = f"Internal error; quote request id {request_id} when reporting it."
        return json_response(error_body(message, "server_error", "internal_error"), status_code=500)
