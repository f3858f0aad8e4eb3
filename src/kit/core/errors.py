"""The kit's shared exceptions and the one JSON error body every service answers with.

    KitError                     base: catch this to handle any failure the kit raises on purpose
    ├── ConfigError              a setting is invalid or missing (raised at start-up)
    └── ModelUnavailableError    a local model's package or engine is missing or fails to load

Each service adds its own small tree under `KitError` and maps it once to HTTP responses, with a
stable JSON body in the OpenAI style: `{"error": {"message", "type", "param", "code"}}`
(`error_body`), documented in each API's OpenAPI schema by `ERROR_RESPONSES`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class KitError(Exception):
    """Base of every error the kit raises deliberately; `type` names it in error bodies."""

    type = "kit_error"


class ConfigError(KitError):
    type = "invalid_configuration"


class ModelUnavailableError(KitError):
    type = "model_unavailable"


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """`{"error": {...}}` as OpenAI sends it, so OpenAI SDKs raise their usual exceptions."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The error body's schema, for the OpenAPI documents (responses are built by `error_body`)."""

    error: ErrorDetail


# `responses=` for a router: every 4xx and 5xx carries the error body. Documenting the "4XX" range
# also drops FastAPI's default 422 entry, whose `{"detail": [...]}` the services never send.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Refused: error.message says why and the fix."},
    "5XX": {"model": ErrorResponse, "description": "A model or server failure (no stack trace)."},
}
