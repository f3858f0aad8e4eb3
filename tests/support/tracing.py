"""Spans made by this test process, kept in memory, and traces read back from an MLflow store.

A process has one TracerProvider and span processors cannot be removed from it, so one
in-memory exporter is attached once per process and emptied before each test that reads it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kit.core.settings import KitSettings
from kit.core.tracing import add_span_processor, configure_tracing

_exporter: InMemorySpanExporter | None = None


def memory_exporter() -> InMemorySpanExporter:
    """Every span this process finishes from now on, emptied; installs tracing if need be."""
    global _exporter
    if _exporter is None:
        # Install tracing only where nothing has: configuring again would also reset what the
        # test set up first (content capture on, from a fixture).
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            configure_tracing(KitSettings(_env_file=None, trace_exporter="none"), "tests")  # type: ignore[call-arg]
        _exporter = InMemorySpanExporter()
        add_span_processor(SimpleSpanProcessor(_exporter))
    _exporter.clear()
    return _exporter


def trace_id_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def span_id_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def parent_hex(span: ReadableSpan) -> str | None:
    return f"{span.parent.span_id:016x}" if span.parent is not None else None


def named(spans: Iterable[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called `name`."""
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in spans]}"
    return found[0]


def mlflow_trace(tracking_uri: str, trace_id: str, *, until: int, timeout: float = 20.0) -> Any:
    """The MLflow trace of OpenTelemetry trace `trace_id` once it holds `until` spans (they
    come from several processes' batch exporters, so they arrive over a few hundred ms)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    deadline = time.monotonic() + timeout
    found: Any = None
    while time.monotonic() < deadline:
        try:
            found = client.get_trace(f"tr-{trace_id}")
        except Exception:  # not stored yet
            found = None
        if found is not None and len(found.data.spans) >= until:
            return found
        time.sleep(0.2)
    names = sorted(span.name for span in found.data.spans) if found is not None else []
    raise AssertionError(f"trace tr-{trace_id} holds {names} after {timeout} s, not {until} spans")
