"""Prometheus helpers shared by the services: a registry per app, HTTP metrics, a /metrics route.

Each app factory makes its own `CollectorRegistry` rather than using prometheus-client's global
one, so two apps in one process (as in tests) never collide over a metric name. Route labels use
the route's template (`/v1/items/{id}`), never the raw path, so the number of time series stays
bounded whatever URLs clients send.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Buckets for request latency in seconds: from a cache hit (ms) to a slow generation (a minute).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class HttpMetrics:
    """The request counter and latency histogram every service exports."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.requests = Counter(
            "http_requests",  # exported as http_requests_total
            "HTTP requests by route, method and status code.",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request start to the last byte of the response.",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class HttpMetricsMiddleware:
    """Counts and times every HTTP request (plain ASGI: a streamed response is timed to its end)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before starting a response, that is what the client sees

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The standard Server-Timing header: the time spent in this server before the
                # response started, visible in a browser's dev tools and to any client.
                elapsed_ms = (time.perf_counter() - start) * 1000
                MutableHeaders(scope=message).append("server-timing", f"app;dur={elapsed_ms:.3f}")
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(self.metrics.service, method, route, str(status)).inc()
            self.metrics.latency.labels(self.metrics.service, method, route).observe(
                time.perf_counter() - start
            )


def _route_template(scope: Scope) -> str:
    """`/v1/items/{id}` for a matched route; one fixed label for everything unmatched (404s)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


def add_metrics_route(app: Starlette, registry: CollectorRegistry, path: str = "/metrics") -> None:
    """Serve the registry at exactly `path`.

    A route rather than prometheus-client's `make_asgi_app()` mounted at `/metrics`: a mount
    answers `/metrics` with a redirect to `/metrics/`, which some scrapers do not follow.
    """

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_route(path, metrics, methods=["GET"], include_in_schema=False)
