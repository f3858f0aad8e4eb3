"""One RAG question is one trace: the RAG service's spans, then a real gateway process's, down to
the provider call, in an in-memory exporter and in an MLflow store (sqlite) alike.

The gateway runs as `kit serve gateway` in front of the fake upstream, with deployments "a" and
"b" (a fails first, so the trace shows the fallback); the RAG app runs in this process and calls
it over HTTP with the gateway client, which carries the trace in its `traceparent` header.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from kit.core.tracing import stop_exporting
from kit.llm.gateway_client import GatewayClient
from kit.llm.local_client import LocalClient
from kit.rag_service.app import create_app
from kit.rag_service.settings import RagSettings
from tests.integration.rag_helpers import ADMIN, indexed_docs, rag_keys
from tests.support.fake_openai import FakeUpstream, error, ok
from tests.support.servers import Served, create_gateway_key, kit_service, subprocess_env
from tests.support.tracing import (
    memory_exporter,
    mlflow_trace,
    named,
    parent_hex,
    span_id_hex,
    trace_id_hex,
)

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]
# Personal data and a token in the question: with content capture on, traces must mask both.
QUESTION = "When do background tasks run? Reply to jo@example.com, Bearer tok-1234567890abcdef"
ANSWER = "Background tasks run after the response is sent [1]."
CONTENT_ATTRIBUTES = (
    "kit.rag.question",
    "kit.rag.answer",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents",
)


@dataclass
class Stack:
    gateway: Served
    key: str
    tracking_uri: str
    upstream: FakeUpstream
    capture: bool  # KIT_TRACE_CONTENT of both services


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One MLflow store for the module: spans of both tests, told apart by their trace ids.
    Created here, before two processes write to it (their race to create it is the
    exporter's retry, tested in tests/unit/test_tracing.py)."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("traces")
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    yield folder
    stop_exporting()  # later tests of this process send their spans nowhere again


@pytest.fixture(scope="module", params=[False, True], ids=["content-off", "content-on"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    store_dir: Path,
    _upstream_server: FakeUpstream,
) -> Iterator[Stack]:
    """A `kit serve gateway` process, with content capture off or on, for the module's tests."""
    capture = request.param
    tmp_path = tmp_path_factory.mktemp("gateway")
    upstream = _upstream_server
    tracking_uri = f"sqlite:///{store_dir / 'mlflow.db'}"
    models = tmp_path / "models.yaml"
    models.write_text(
        yaml.safe_dump(
            {
                "default_model": "chain",
                "routing": {"retries": {"server_error": 0}, "backoff_s": 0},
                "deployments": {
                    name: {
                        "provider": "openai",
                        "model": f"fake-{name}",
                        "api_base": upstream.base_url,
                    }
                    for name in ("a", "b")
                },
                "models": {"chain": ["a", "b"]},
            }
        )
    )
    env = subprocess_env(tmp_path) | {
        "GATEWAY_MODELS_FILE": str(models),
        "KIT_LOG_FORMAT": "json",
        "KIT_TRACE_EXPORTER": "mlflow",
        "KIT_TRACE_CONTENT": str(capture).lower(),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not the default 5 s
    }
    key = create_gateway_key(KIT, env, REPO, "--id", "rag-service")
    with kit_service(KIT, "gateway", env, tmp_path / "gateway.log", cwd=REPO) as gateway:
        yield Stack(gateway, key, tracking_uri, upstream, capture)


@pytest.fixture
def rag(
    stack: Stack, tmp_path: Path, local_client: LocalClient, upstream: FakeUpstream
) -> Iterator[TestClient]:
    """The RAG service in this process, in front of the stack's gateway (`upstream` empties
    the fake upstream's script and record for each test)."""
    root = tmp_path / "docs"
    store = indexed_docs(root, local_client.embedder)
    settings = RagSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "rag",
        docs_root=root,
        model="chain",
        trace_exporter="mlflow",
        trace_content=stack.capture,
        mlflow_tracking_uri=stack.tracking_uri,
    )
    llm = GatewayClient(stack.gateway.url, api_key=stack.key)
    app = create_app(
        settings, llm=llm, store=store, embedder=local_client.embedder, keys=rag_keys()
    )
    with TestClient(app, headers=ADMIN) as client:
        yield client


def test_one_question_is_one_trace_across_the_rag_service_and_the_gateway(
    stack: Stack, rag: TestClient
) -> None:
    spans = memory_exporter()
    stack.upstream.script(error(500), ok(ANSWER, prompt_tokens=40, completion_tokens=9))

    response = rag.post("/ask", json={"question": QUESTION, "k": 1})

    assert response.status_code == 200, response.text
    mine = spans.get_finished_spans()
    trace_id = trace_id_hex(named(mine, "POST /ask"))
    assert {trace_id_hex(span) for span in mine} == {trace_id}  # one trace in this process
    # The RAG service's tree: request > rag ask > (retrieval > embedding), (chat > HTTP call).
    root = named(mine, "POST /ask")
    ask = named(mine, "rag ask")
    retrieval = named(mine, "retrieval docs")
    embedding = next(s for s in mine if s.name.startswith("embeddings "))
    chat = named(mine, "chat chain")
    http = next(s for s in mine if s.kind is SpanKind.CLIENT and parent_hex(s) == span_id_hex(chat))
    assert root.parent is None and root.kind is SpanKind.SERVER
    assert parent_hex(ask) == span_id_hex(root)
    assert parent_hex(retrieval) == span_id_hex(ask) and parent_hex(chat) == span_id_hex(ask)
    assert parent_hex(embedding) == span_id_hex(retrieval)
    assert _attributes(retrieval, "gen_ai.operation.name", "gen_ai.data_source.id") == {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": "docs",
    }
    assert retrieval.attributes["kit.retrieval.chunk_ids"] == tuple(
        c["chunk_id"] for c in response.json()["citations"]
    )
    assert len(retrieval.attributes["kit.retrieval.scores"]) == 1
    assert _attributes(chat, "gen_ai.operation.name", "gen_ai.prompt.name") == {
        "gen_ai.operation.name": "chat",
        "gen_ai.prompt.name": "answer-v2",
    }
    assert chat.attributes["gen_ai.usage.input_tokens"] == 40
    assert chat.attributes["gen_ai.usage.output_tokens"] == 9
    assert ask.attributes["kit.rag.refused"] is False

    # The gateway's spans continue the trace under the RAG service's HTTP call, in MLflow.
    stored = mlflow_trace(stack.tracking_uri, trace_id, until=len(mine) + 4)
    by_name: dict[str, list[Any]] = {}
    for span in stored.data.spans:
        by_name.setdefault(span.name, []).append(span)
    server = by_name["POST /v1/chat/completions"][0]
    assert server.parent_id == span_id_hex(http)
    gateway_chat = next(s for s in by_name["chat chain"] if s.parent_id == server.span_id)
    failed, answered = by_name["chat fake-a"][0], by_name["chat fake-b"][0]
    assert failed.parent_id == answered.parent_id == gateway_chat.span_id
    assert failed.status.status_code.value == "ERROR"
    assert failed.get_attribute("error.type") == "server_error"
    assert answered.get_attribute("gen_ai.provider.name") == "openai"
    assert answered.get_attribute("kit.gateway.deployment") == "b"
    assert gateway_chat.get_attribute("kit.gateway.deployment") == "b"
    assert gateway_chat.get_attribute("kit.gateway.fallbacks") == 1
    assert gateway_chat.get_attribute("kit.gateway.cache") in {"off", "bypass", "miss"}
    assert gateway_chat.get_attribute("gen_ai.usage.input_tokens") == 40
    assert gateway_chat.get_attribute("gen_ai.response.model") == "fake-b"
    assert gateway_chat.get_attribute("kit.gateway.key_id") == "rag-service"
    # The RAG service's own spans are in the same MLflow trace.
    assert {"POST /ask", "rag ask", "retrieval docs"} <= set(by_name)
    # The provider received the trace too (the router's client span for deployment b).
    upstream_call = stack.upstream.requests[-1]
    assert upstream_call.headers["traceparent"].split("-")[1] == trace_id
    # Every gateway log line about the request carries its trace id.
    lines = [
        json.loads(line)
        for line in stack.gateway.log.read_text().splitlines()
        if line.startswith("{")
    ]
    request_lines = [line for line in lines if line.get("event") == "model_request"]
    assert request_lines and all(line["trace_id"] == trace_id for line in request_lines)

    content = _content_attributes(list(mine) + [_as_attributes(s) for s in stored.data.spans])
    if not stack.capture:
        assert content == {}
        everything = json.dumps([dict(s.attributes or {}) for s in mine], default=str)
        everything += json.dumps([s.attributes for s in stored.data.spans], default=str)
        assert "background tasks run" not in everything.lower()
        return
    # Content on: recorded on both sides, masked like a log line.
    assert {"kit.rag.question", "gen_ai.input.messages", "gen_ai.output.messages"} <= set(content)
    recorded = json.dumps(content)
    assert "When do background tasks run?" in recorded
    assert "jo@example.com" not in recorded and "[EMAIL]" in recorded
    assert "tok-1234567890abcdef" not in recorded and "[REDACTED]" in recorded
    assert "Background tasks run after the response is sent" in recorded  # the answer
    gateway_prompt = str(gateway_chat.get_attribute("gen_ai.input.messages"))
    assert "[EMAIL]" in gateway_prompt and "jo@example.com" not in gateway_prompt


def test_a_traceparent_from_the_caller_is_continued(stack: Stack, rag: TestClient) -> None:
    spans = memory_exporter()
    stack.upstream.default = ok(ANSWER)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    response = rag.post(
        "/ask",
        json={"question": "When do background tasks run?", "k": 1},
        headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
    )

    assert response.status_code == 200, response.text
    root = named(spans.get_finished_spans(), "POST /ask")
    assert trace_id_hex(root) == caller_trace
    assert parent_hex(root) == caller_span and root.parent is not None and root.parent.is_remote
    stored = mlflow_trace(
        stack.tracking_uri, caller_trace, until=len(spans.get_finished_spans()) + 3
    )
    assert "POST /v1/chat/completions" in {s.name for s in stored.data.spans}
    assert all(s.status.status_code.value != "ERROR" for s in stored.data.spans)


def _attributes(span: ReadableSpan, *names: str) -> dict[str, Any]:
    attributes = span.attributes or {}
    return {name: attributes[name] for name in names if name in attributes}


@dataclass
class _Stored:
    """An MLflow span's attributes in the shape of an SDK span's, to check both alike."""

    attributes: dict[str, Any]


def _as_attributes(span: Any) -> _Stored:
    return _Stored(dict(span.attributes))


def _content_attributes(spans: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for span in spans:
        for name in CONTENT_ATTRIBUTES:
            value = (span.attributes or {}).get(name)
            if value is not None:
                found.setdefault(name, value)
    return found
