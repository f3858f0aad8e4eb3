"""Tracing for the web services: a server span per request, the caller's trace continued.

    instrument_app(app, settings, service="gateway")    # in the app factory

OpenTelemetry's FastAPI instrumentation makes the server span (`POST /ask`) and continues a
trace whose W3C `traceparent` header the caller sent: the RAG service's HTTP client (httpx,
instrumented by `configure_tracing`) sends one to the gateway, so a question and its model call
are one trace. Probes and /metrics are not traced: they would be most of the spans and none of
the interest. The ASGI `receive` and `send` sub-spans (one per body chunk) are left out too.
"""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from kit.core.settings import KitSettings
from kit.core.tracing import configure_tracing

UNTRACED_PATHS = "/healthz,/readyz,/metrics"


def instrument_app(app: FastAPI, settings: KitSettings, *, service: str) -> None:
    """Set up tracing for this process (`kit.core.tracing`) and trace `app`'s requests."""
    provider = configure_tracing(settings, service)
    if provider is None:  # OTEL_SDK_DISABLED=true
        return
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_PATHS,
        exclude_spans=["receive", "send"],
    )
