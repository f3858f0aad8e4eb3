"""Tracing set-up: where spans go, content off unless asked for and then scrubbed, trace ids on
every log line, and spans written to an MLflow store (sqlite) in one trace per trace id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from kit.core import tracing
from kit.core.logging import configure_logging, get_logger
from kit.core.settings import KitSettings
from kit.core.tracing import GenAI, MlflowSpanExporter, configure_tracing, record_content, tracer
from tests.support.tracing import memory_exporter, named, span_id_hex


def _settings(tmp_path: Path, **values: object) -> KitSettings:
    return KitSettings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


@pytest.fixture
def content_capture(tmp_path: Path) -> Iterator[None]:
    """Content capture on for one test, then off again for the rest of this process."""
    configure_tracing(_settings(tmp_path, trace_exporter="none", trace_content=True), "tests")
    yield
    configure_tracing(_settings(tmp_path, trace_exporter="none"), "tests")


def test_auto_sends_spans_to_mlflow_without_a_collector_and_to_it_with_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    settings = _settings(tmp_path, trace_exporter="auto")
    kind, uri, experiment, location = tracing._destination(settings)  # type: ignore[misc]
    assert (kind, experiment) == ("mlflow", "kit-traces")
    assert uri == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"  # the kit's own local store
    assert location.endswith("/data/mlartifacts/kit-traces")

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing._destination(settings) == ("otlp",)
    server = _settings(tmp_path, trace_exporter="mlflow", mlflow_tracking_uri="http://mlflow:5000")
    assert tracing._destination(server) == ("mlflow", "http://mlflow:5000", "kit-traces", "")
    assert tracing._destination(_settings(tmp_path, trace_exporter="none")) is None


def test_the_exporter_setting_refuses_unknown_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"trace_exporter|KIT_TRACE_EXPORTER"):
        _settings(tmp_path, trace_exporter="jaeger")


def test_content_is_not_recorded_unless_asked_for(tmp_path: Path) -> None:
    spans = memory_exporter()
    configure_tracing(_settings(tmp_path, trace_exporter="none"), "tests")

    with tracer().start_as_current_span("chat local") as span:
        record_content(span, GenAI.INPUT_MESSAGES, [{"role": "user", "content": "Hi"}])
        span.set_attribute(GenAI.INPUT_TOKENS, 3)

    attributes = dict(named(spans.get_finished_spans(), "chat local").attributes or {})
    assert attributes == {GenAI.INPUT_TOKENS: 3}


def test_recorded_content_is_scrubbed_like_a_log_line(
    content_capture: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spans = memory_exporter()
    question = "Mail jo@example.com, card 4111 1111 1111 1111, Bearer tok-1234567890abcdef"

    with tracer().start_as_current_span("rag ask") as span:
        record_content(span, "kit.rag.question", question)
        record_content(span, GenAI.INPUT_MESSAGES, tracing.input_messages([{"content": question}]))

    attributes = named(spans.get_finished_spans(), "rag ask").attributes or {}
    assert attributes["kit.rag.question"] == "Mail [EMAIL], card [CARD], Bearer [REDACTED]"
    [message] = json.loads(str(attributes[GenAI.INPUT_MESSAGES]))
    assert message == {
        "role": "user",
        "parts": [{"type": "text", "content": "Mail [EMAIL], card [CARD], Bearer [REDACTED]"}],
    }


def test_a_secret_the_process_knows_is_masked_in_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789abcdef")
    configure_tracing(_settings(tmp_path, trace_exporter="none", trace_content=True), "tests")
    spans = memory_exporter()
    try:
        with tracer().start_as_current_span("chat") as span:
            record_content(span, GenAI.OUTPUT_MESSAGES, "the key is sk-live-0123456789abcdef")
    finally:
        configure_tracing(_settings(tmp_path, trace_exporter="none"), "tests")

    value = named(spans.get_finished_spans(), "chat").attributes[GenAI.OUTPUT_MESSAGES]  # type: ignore[index]
    assert value == "the key is [REDACTED]"


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = memory_exporter()
    configure_logging(_settings(tmp_path, log_format="json"))

    with tracer().start_as_current_span("work"):
        get_logger("gateway").info("inside")
        logging.getLogger("some.library").warning("also inside")
    get_logger("gateway").info("outside")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    work = named(spans.get_finished_spans(), "work")
    assert work.context is not None
    expected = {"trace_id": f"{work.context.trace_id:032x}", "span_id": span_id_hex(work)}
    inside, library, outside = lines
    assert {k: inside[k] for k in expected} == expected
    assert {k: library[k] for k in expected} == expected
    assert "trace_id" not in outside and "span_id" not in outside


def test_the_mlflow_exporter_stores_spans_as_one_trace(tmp_path: Path) -> None:
    """Spans from a local SDK provider, written to a sqlite store the way the kit's batch
    processor writes them, then read back with MLflow's own client."""
    from mlflow.tracking import MlflowClient
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(MlflowSpanExporter(uri, "traces", None)))
    local = provider.get_tracer("test")
    with (
        local.start_as_current_span("rag ask") as root,
        local.start_as_current_span("chat local") as chat,
    ):
        chat.set_attributes(
            {GenAI.OPERATION: "chat", GenAI.INPUT_TOKENS: 40, GenAI.OUTPUT_TOKENS: 9}
        )

    trace_id = f"{root.get_span_context().trace_id:032x}"
    stored = MlflowClient(uri).get_trace(f"tr-{trace_id}")
    spans = {span.name: span for span in stored.data.spans}
    assert set(spans) == {"rag ask", "chat local"}
    assert spans["chat local"].parent_id == spans["rag ask"].span_id
    assert spans["chat local"].get_attribute(GenAI.INPUT_TOKENS) == 40
    assert spans["chat local"].span_type == "CHAT_MODEL"  # MLflow read the GenAI conventions
    experiment = MlflowClient(uri).get_experiment_by_name("traces")
    assert experiment is not None and stored.info.experiment_id == experiment.experiment_id


def test_a_store_that_cannot_be_written_costs_one_warning_not_the_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    exporter = MlflowSpanExporter(
        f"sqlite:///{blocked}/mlflow.db", "traces", None, attempts=2, backoff_s=0.01
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    with caplog.at_level(logging.WARNING, logger="kit.tracing"):
        for _ in range(3):
            with provider.get_tracer("test").start_as_current_span("work"):
                pass

    warnings = [r for r in caplog.records if r.name == "kit.tracing"]
    assert len(warnings) == 1
    assert "traces not stored in MLflow" in warnings[0].getMessage()
    assert "KIT_TRACE_EXPORTER" in warnings[0].getMessage()


def test_a_store_that_comes_back_while_retrying_keeps_the_batch(tmp_path: Path) -> None:
    """The sqlite file another process is still creating, or a server restarting: the batch
    waits and is stored once the store answers (here: repaired between the first try and the
    second, as another process would finish creating it)."""
    from mlflow.tracking import MlflowClient
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    folder = tmp_path / "store"
    folder.write_text("")  # a file where the store's folder should be: writing fails
    uri = f"sqlite:///{folder}/mlflow.db"
    exporter = MlflowSpanExporter(uri, "traces", None, attempts=3, backoff_s=0.01)
    tries: list[str] = []
    looked_up = exporter._store

    def counted() -> tuple[object, str]:
        tries.append("try")
        if len(tries) == 2:
            folder.unlink()
            folder.mkdir()
        return looked_up()

    exporter._store = counted  # type: ignore[method-assign]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    with provider.get_tracer("test").start_as_current_span("work") as span:
        pass

    trace_id = f"{span.get_span_context().trace_id:032x}"
    assert [s.name for s in MlflowClient(uri).get_trace(f"tr-{trace_id}").data.spans] == ["work"]
    assert len(tries) == 2  # the first failed, the second stored the batch


def test_structured_content_stays_valid_json_with_its_numbers(content_capture: None) -> None:
    """Scrubbing runs on the strings inside, not on the JSON text: a score is not a phone number."""
    spans = memory_exporter()
    documents = [{"id": "faq.md#0", "score": 0.61234567891, "content": "call +44 20 7946 0958"}]

    with tracer().start_as_current_span("retrieval docs") as span:
        record_content(span, GenAI.RETRIEVAL_DOCUMENTS, documents)

    recorded = named(spans.get_finished_spans(), "retrieval docs").attributes or {}
    assert json.loads(str(recorded[GenAI.RETRIEVAL_DOCUMENTS])) == [
        {"id": "faq.md#0", "score": 0.61234567891, "content": "call [PHONE]"}
    ]
