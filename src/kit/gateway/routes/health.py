"""GET /healthz (the process is alive) and GET /readyz (it can serve: local models loaded).

/readyz also reports Redis, but a gateway without Redis still serves (from memory, see
`redis_health.py`), so Redis down makes it "degraded", not "not ready". Both answer without a
key (kubelets and load balancers call them), so they say what is wrong, never the exception
text: that goes to the log.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from kit.gateway.responses import json_response

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """503 until the local models are loaded; 200 "degraded" while Redis is unreachable.

    Why 200 when Redis is down: this replica still serves, with its own cache and limits. Every
    replica loses the same Redis at the same moment, so a 503 would take them all out of the load
    balancer at once: a Redis blip would become a gateway outage. The alert on gateway_redis_up
    tells a person instead.
    """
    state = request.app.state
    warm = "ready" if state.warm.is_set() else "loading"
    checks: dict[str, str] = {"local_models": state.warm_error or warm}
    if state.redis is not None:
        # "ready" or "degraded": why is in the log (redis_degraded), not in this unauthenticated
        # answer, which would otherwise show Redis's address to anyone who can reach the port.
        checks["redis"] = "ready" if await state.redis.check() == "ready" else "degraded"
    resting = state.gateway.router.resting()
    if checks["local_models"] != "ready":
        status, code = "not ready", 503
    elif all(value == "ready" for value in checks.values()):
        status, code = "ready", 200
    else:
        status, code = "degraded", 200
    return json_response({"status": status, "checks": checks, "resting": resting}, code)
