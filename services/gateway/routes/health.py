"""GET /healthz (the process is alive) and GET /readyz (it can serve: models loaded, Redis up)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.gateway.responses import json_response

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """503 until the local models are loaded; 503 when Redis is configured but unreachable."""
    state = request.app.state
    warm = "ready" if state.warm.is_set() else "loading"
    checks: dict[str, str] = {"local_models": state.warm_error or warm}
    if state.settings.redis_url is not None:
        try:
            checks["redis"] = "ready" if await state.gateway.limits.ping() else "unreachable"
        except Exception as exc:  # a readiness probe reports, it does not raise
            checks["redis"] = f"unreachable ({type(exc).__name__})"
    resting = state.gateway.router.resting()
    ready = all(value == "ready" for value in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks, "resting": resting}
    return json_response(body, status_code=200 if ready else 503)
