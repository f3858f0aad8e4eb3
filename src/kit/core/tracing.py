"""Traces of every request and job: OpenTelemetry spans, kept in MLflow or sent to a collector.

    configure_tracing(settings, service="gateway")   # once, where a process starts
    with tracer().start_as_current_span("retrieval docs") as span:
        span.set_attribute(GenAI.OPERATION, "retrieval")

One RAG question is one trace: the RAG service's spans, then (through the W3C `traceparent`
header that the HTTP client instrumentation adds) the gateway's, down to the provider call.
Library code only uses the OpenTelemetry API (`tracer()`); this module sets up the SDK behind it.

Where spans go, `KIT_TRACE_EXPORTER`:

    auto     otlp when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set,
             else mlflow (the default: no collector needed)
    mlflow   the MLflow tracking store, experiment KIT_TRACE_EXPERIMENT: sqlite under
             KIT_DATA_DIR, or the server at MLFLOW_TRACKING_URI. `kit mlflow ui` shows the tree.
    otlp     any OpenTelemetry collector (Jaeger, Tempo, Honeycomb, an MLflow server's
             /v1/traces), set up by the standard OTEL_EXPORTER_OTLP_* variables
    console  each finished span as JSON on stdout, for a quick look
    none     spans are made (their ids still go on every log line) and kept nowhere

Sampling is the SDK's own, from the standard OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
(default: follow the caller's decision, else sample everything); OTEL_SDK_DISABLED=true turns
tracing off. Spans are exported in the background (a batch processor), never on the request path.

Content (prompts, completions, retrieved text) is not recorded unless KIT_TRACE_CONTENT=true;
then it is scrubbed like a log line: every known secret and `Bearer` token masked, and e-mail
addresses, phone and card numbers replaced (`record_content`). Sizes, ids, scores, models,
tokens and costs are always recorded: they carry no user text.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)

from kit.core.redact import redact
from kit.core.secrets import SecretScrubber, secret_values

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from kit.core.settings import KitSettings

# Not kit.core.logging: that module reads the current span for its log lines, so it imports
# this one's dependencies; a plain logger keeps the two independent.
_log = logging.getLogger("kit.tracing")

TRACER_NAME = "kit"


class GenAI:
    """Attribute names of the OpenTelemetry GenAI semantic conventions used by the kit.

    https://opentelemetry.io/docs/specs/semconv/gen-ai/ (they now live in the
    open-telemetry/semantic-conventions-genai repository, hence strings here rather than the
    deprecated constants of `opentelemetry.semconv._incubating`). MLflow reads these names:
    a span with `gen_ai.operation.name=chat` shows as a chat model call with its tokens."""

    OPERATION = "gen_ai.operation.name"  # chat | embeddings | retrieval
    PROVIDER = "gen_ai.provider.name"  # openai, anthropic, ... (the deployment's provider)
    REQUEST_MODEL = "gen_ai.request.model"
    RESPONSE_MODEL = "gen_ai.response.model"
    REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
    REQUEST_TEMPERATURE = "gen_ai.request.temperature"
    REQUEST_STREAM = "gen_ai.request.stream"
    INPUT_TOKENS = "gen_ai.usage.input_tokens"
    OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
    FINISH_REASONS = "gen_ai.response.finish_reasons"
    DATA_SOURCE = "gen_ai.data_source.id"  # the collection a retrieval searched
    PROMPT_NAME = "gen_ai.prompt.name"
    # Content: recorded only when KIT_TRACE_CONTENT=true (`record_content`).
    INPUT_MESSAGES = "gen_ai.input.messages"
    OUTPUT_MESSAGES = "gen_ai.output.messages"
    RETRIEVAL_QUERY = "gen_ai.retrieval.query.text"
    RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"


class _Exporters(SpanProcessor):
    """The kit's exporters, one per destination, behind the one processor the provider holds.

    The SDK cannot remove a processor from a provider; this one can drop its exporters, so a
    process that is done with a destination (a test, a notebook run again) stops writing there.
    """

    def __init__(self) -> None:
        self._by_destination: dict[tuple[str, ...], SpanProcessor] = {}

    def __contains__(self, destination: object) -> bool:
        return destination in self._by_destination

    def add(self, destination: tuple[str, ...], processor: SpanProcessor) -> None:
        self._by_destination[destination] = processor

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for processor in list(self._by_destination.values()):
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in list(self._by_destination.values()):
            processor.on_end(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for p in list(self._by_destination.values()))

    def shutdown(self) -> None:
        for processor in list(self._by_destination.values()):
            processor.shutdown()

    def clear(self) -> None:
        """Export what is waiting, then forget every destination."""
        processors = list(self._by_destination.values())
        self._by_destination.clear()
        for processor in processors:
            processor.shutdown()  # a batch processor exports its queue first


@dataclass
class _State:
    """What `configure_tracing` set up in this process (one TracerProvider per process)."""

    provider: TracerProvider | None = None
    exporters: _Exporters = field(default_factory=_Exporters)
    capture_content: bool = False
    scrubber: SecretScrubber = field(default_factory=lambda: SecretScrubber(()))


_state = _State()
_lock = threading.Lock()
_TRACER = trace.get_tracer(TRACER_NAME)


def configure_tracing(settings: KitSettings, service: str) -> TracerProvider | None:
    """Install the SDK's TracerProvider (once per process) and this settings' exporter.

    Safe to call again, from every app factory and command: a second service in the same
    process (the embedded gateway next to the RAG service) adds its exporter only if it sends
    spans somewhere new. `service` names the process in the traces (`service.name`, unless
    OTEL_SERVICE_NAME says otherwise). Returns None when OTEL_SDK_DISABLED is true."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    with _lock:
        _state.capture_content = settings.trace_content
        _state.scrubber = SecretScrubber(secret_values() | settings.secret_values())
        if _state.provider is None:
            _state.provider = _installed_provider(service)
            _state.provider.add_span_processor(_state.exporters)
            _instrument_http_clients()
        destination = _destination(settings)
        if destination is not None and destination not in _state.exporters:
            _state.exporters.add(destination, _processor(destination))
        return _state.provider


def stop_exporting() -> None:
    """Export the spans waiting, then stop sending spans anywhere until the next
    `configure_tracing` names a destination (tests, notebooks that set up again)."""
    with _lock:
        _state.exporters.clear()


def add_span_processor(processor: SpanProcessor) -> None:
    """Send every span of this process to `processor` too (tests: an in-memory exporter)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError("configure_tracing() has not installed a TracerProvider yet")
    provider.add_span_processor(processor)


def flush(timeout_ms: int = 10_000) -> None:
    """Export every finished span now (a job before it exits, a test before it reads a store)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(timeout_ms)


def tracer() -> trace.Tracer:
    """The kit's tracer. Made at import, before any provider exists, it is OpenTelemetry's
    proxy: spans are no-ops until `configure_tracing` installs the SDK, real ones after."""
    return _TRACER


def capture_content() -> bool:
    return _state.capture_content


def record_content(span: trace.Span, name: str, value: Any) -> None:
    """Set `name` on `span` to `value` (text, or anything JSON can write), only when content
    capture is on, scrubbed of secrets and personal data first."""
    if not _state.capture_content or not span.is_recording():
        return
    clean = _scrubbed(value)  # the text inside, before it becomes JSON: numbers stay numbers
    span.set_attribute(
        name, clean if isinstance(clean, str) else json.dumps(clean, ensure_ascii=False)
    )


def _scrubbed(value: Any) -> Any:
    """`value` with every string in it scrubbed of secrets and personal data."""
    if isinstance(value, str):
        return redact(_state.scrubber(None, "", value))
    if isinstance(value, Mapping):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(item) for item in value]
    return value


def input_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages in the semantic conventions' shape (`gen_ai.input.messages`)."""
    shaped = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            texts = [str(part.get("text", "")) for part in content if part.get("type") == "text"]
        else:
            texts = [str(content or "")]
        shaped.append(
            {
                "role": message.get("role", "user"),
                "parts": [{"type": "text", "content": text} for text in texts],
            }
        )
    return shaped


def output_messages(text: str, finish_reason: str) -> list[dict[str, Any]]:
    """One assistant answer in the semantic conventions' shape (`gen_ai.output.messages`)."""
    return [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": text}],
            "finish_reason": finish_reason,
        }
    ]


def current_ids() -> dict[str, str]:
    """The current trace and span ids as hex (what log lines carry), or {} outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def _installed_provider(service: str) -> TracerProvider:
    """The process's TracerProvider: ours, or one the host application installed first."""
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        return existing  # e.g. `opentelemetry-instrument kit serve ...`: keep its set-up
    from importlib.metadata import PackageNotFoundError, version

    try:
        kit_version = version("ai-engineering-kit")
    except PackageNotFoundError:  # running from a source tree without installing
        kit_version = "0"
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, which win.
    resource = Resource.create({"service.name": f"kit-{service}", "service.version": kit_version})
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    trace.set_tracer_provider(provider)
    return provider


def _instrument_http_clients() -> None:
    """Trace every outgoing httpx call (the gateway client, LiteLLM, Qdrant's client) and send
    the `traceparent` header with it, so the server called continues the trace: OpenTelemetry's
    own instrumentation. (The gateway's aiohttp providers add the header themselves:
    src/kit/gateway/providers/openai_compatible.py says why.)"""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def _destination(settings: KitSettings) -> tuple[str, ...] | None:
    """Where this settings' spans go, as a hashable key (one exporter per destination)."""
    exporter = settings.trace_exporter
    if exporter == "auto":
        otlp = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        exporter = "otlp" if otlp else "mlflow"
    if exporter == "none":
        return None
    if exporter == "mlflow":
        from kit.core.tracking import tracking_uri

        uri = tracking_uri(settings)
        location = None
        if not settings.mlflow_tracking_uri:  # local store: artifacts beside it, as for runs
            location = (settings.data_dir / "mlartifacts" / settings.trace_experiment).as_uri()
            settings.ensure_dirs()
        return ("mlflow", uri, settings.trace_experiment, location or "")
    return (exporter,)


def _processor(destination: tuple[str, ...]) -> SpanProcessor:
    kind = destination[0]
    exporter: SpanExporter
    if kind == "mlflow":
        exporter = MlflowSpanExporter(destination[1], destination[2], destination[3] or None)
        exporter.open_in_background()
    elif kind == "otlp":
        # Reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION itself.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    # The batch processor exports from its own thread every OTEL_BSP_SCHEDULE_DELAY ms (5 s by
    # default) or when OTEL_BSP_MAX_EXPORT_BATCH_SIZE spans are waiting; a full queue drops
    # spans (counted by the SDK) rather than slowing requests down.
    return BatchSpanProcessor(exporter)


class MlflowSpanExporter(SpanExporter):
    """Writes spans to an MLflow tracking store, the way an MLflow server's OTLP endpoint does.

    MLflow's own tracing SDK keeps a separate TracerProvider and only exports spans made through
    `mlflow.start_span`; this exporter stores any OpenTelemetry span instead, so FastAPI's and
    httpx's spans and the kit's land in one trace. Spans are converted with
    `mlflow.entities.Span.from_otel_proto` and written with the store's `log_spans`, as
    `mlflow/server/otel_api.py` does: to sqlite directly, or to a server over REST (which posts
    them to its /v1/traces). Spans of one trace may arrive from several processes and batches;
    the store merges them by trace id (`tr-<trace id>`).

    MLflow is imported on the first export, in the batch processor's thread, so starting a
    service does not wait for it; without MLflow installed the spans are dropped with one
    warning saying what to install or configure instead.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None,
        *,
        attempts: int = 4,
        backoff_s: float = 1.0,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._target: tuple[Any, str] | None = None
        self._warned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Store a batch; retried with a doubling wait (1, 2, 4 s), so a store that another
        process is creating at that moment (the gateway and the RAG service sharing a fresh
        sqlite file) or a server that restarts does not cost the batch."""
        failure: Exception | None = None
        for attempt in range(self.attempts):
            try:
                store, experiment_id = self._store()
                store.log_spans(experiment_id, _mlflow_spans(spans))
            except Exception as exc:
                failure = exc
                self._target = None  # look the store up again: it may have changed
                if isinstance(exc, ImportError):  # a package missing will not come back by itself
                    break
                if attempt + 1 < self.attempts:
                    time.sleep(self.backoff_s * 2**attempt)
                continue
            self._warned = False
            return SpanExportResult.SUCCESS
        # Tracing must never take a service down; say once what is wrong, then stay quiet.
        if not self._warned:
            self._warned = True
            _log.warning(
                "traces not stored in MLflow (%s: %s); spans of this process are dropped "
                "until it works. Fix MLFLOW_TRACKING_URI, or set KIT_TRACE_EXPORTER=otlp "
                "(a collector) or none.",
                type(failure).__name__,
                str(failure)[:300],
            )
        return SpanExportResult.FAILURE

    def open_in_background(self) -> None:
        """Import MLflow and open the store now, in a daemon thread: it takes seconds of CPU,
        better spent while a service starts than in the middle of its first traffic. A failure
        here is retried, and reported, by the first export."""

        def open_store() -> None:
            try:
                self._store()
            except Exception:
                self._target = None

        threading.Thread(target=open_store, name="kit-mlflow-exporter", daemon=True).start()

    def _store(self) -> tuple[Any, str]:
        if self._target is None:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            # MLflow prices chat spans with LiteLLM's cost map; LiteLLM would fetch it online.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient

            client = MlflowClient(self.tracking_uri)
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                experiment_id = found.experiment_id
            else:
                try:
                    experiment_id = client.create_experiment(
                        self.experiment, artifact_location=self.artifact_location
                    )
                except MlflowException:  # another process created it first
                    created = client.get_experiment_by_name(self.experiment)
                    if created is None:
                        raise
                    experiment_id = created.experiment_id
            # MLflow has no public call that stores OpenTelemetry spans; its OTLP endpoint uses
            # the store's `log_spans`, and so does this exporter.
            self._target = (client._tracking_client.store, experiment_id)
        return self._target

    def shutdown(self) -> None:
        self._target = None


def _mlflow_spans(spans: Sequence[ReadableSpan]) -> list[Any]:
    """SDK spans as MLflow `Span`s, through the OTLP encoding (what a collector would send)."""
    from mlflow.entities.span import Span
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    request = encode_spans(spans)
    return [
        Span.from_otel_proto(proto, resource=resource_spans.resource)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for proto in scope_spans.spans
    ]
