"""The RAG API contract: retrieval from a real Qdrant, answers through a real gateway whose model is
the fake upstream, so citations, refusals, errors and jobs are checked on known answers. The
client sends an admin key (tests/integration/rag_helpers.py); who may call is test_rag_auth.py's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from kit.llm.gateway_client import GatewayClient
from kit.llm.local_client import LocalClient
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.qdrant_store import QdrantStore
from kit.rag_service.app import create_app
from kit.rag_service.settings import RagSettings
from kit.web.embedded import EmbeddedServer
from tests.integration.gateway_helpers import KEY, gateway_app
from tests.integration.rag_helpers import ADMIN, rag_keys
from tests.support.fake_openai import FakeUpstream, error, ok

PAGES = {
    "background.md": "# Background Tasks\n\nBackground tasks run after the response is sent. "
    "Declare a parameter of type BackgroundTasks and call add_task on it.",
    "paths.md": "# Path Parameters\n\nPath parameters are declared in the path string and "
    "typed with annotations, so FastAPI converts and validates them.",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The docs root (KIT_DOCS_ROOT) of these tests, so the ids are the file names."""
    root = tmp_path / "data" / "docs"
    root.mkdir(parents=True)
    for name, text in PAGES.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def rag(
    tmp_path: Path, corpus: Path, upstream: FakeUpstream, local_client: LocalClient
) -> Iterator[TestClient]:
    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    settings = RagSettings(
        _env_file=None,
        environment="test",
        data_dir=tmp_path / "state",  # type: ignore[call-arg]
        model="chain",
        docs_root=corpus,
    )
    with EmbeddedServer(gateway_app(tmp_path / "gw", upstream, local_client)) as gateway:
        llm = GatewayClient(gateway.url, api_key=KEY)
        app = create_app(
            settings, llm=llm, store=store, embedder=local_client.embedder, keys=rag_keys()
        )
        with TestClient(app, headers=ADMIN) as client:
            yield client


def test_an_answer_with_checked_citations_contexts_and_timings(
    rag: TestClient, upstream: FakeUpstream
) -> None:
    upstream.default = ok("Background tasks run after the response is sent [1]. See [9].")

    question = {"question": "When do background tasks run?", "k": 2, "include_contexts": True}
    response = rag.post("/ask", json=question)

    assert response.status_code == 200
    body = response.json()
    assert body["answer"].startswith("Background tasks run after the response")
    assert [(c["number"], c["doc_id"], c["inferred"]) for c in body["citations"]] == [
        (1, "background.md", False)
    ]
    assert body["invalid_citations"] == [9]
    assert body["support"] == 0.5  # one of two sentences is supported by its citation
    assert body["contexts"][0]["doc_id"] == "background.md"
    assert set(body["latency_ms"]) == {"retrieve", "generate", "total"}
    prompt = upstream.requests[-1].body["messages"][-1]["content"]
    assert '<source id="1">\nBackground Tasks' in prompt
    assert "<question>When do background tasks run?</question>" in prompt


def test_an_off_topic_question_is_refused_without_calling_the_model_or_any_page_text(
    rag: TestClient, upstream: FakeUpstream
) -> None:
    response = rag.post("/ask", json={"question": "What is a good lasagna recipe?"})

    body = response.json()
    assert body["refused"] is True and body["answer"] == "I don't know."
    assert "relevant enough" in body["refusal_reason"]
    assert upstream.calls() == 0
    assert body["contexts"] is None and body["citations"] == []
    # Words from the end of each page, which any chunk of it would carry.
    assert "add_task" not in response.text and "converts and validates" not in response.text


def test_contexts_come_only_when_asked_for_answers_and_refusals_alike(
    rag: TestClient, upstream: FakeUpstream
) -> None:
    upstream.default = ok("Background tasks run after the response is sent [1].")
    answered = rag.post("/ask", json={"question": "When do background tasks run?"}).json()
    refused = rag.post(
        "/ask", json={"question": "What is a good lasagna recipe?", "include_contexts": True}
    ).json()

    assert answered["contexts"] is None
    assert [c["doc_id"] for c in answered["citations"]] == ["background.md"]  # with its snippet
    assert answered["citations"][0]["snippet"].startswith("Background tasks run after")
    assert refused["refused"] is True and len(refused["contexts"]) > 0  # asked for: given


def test_filters_limit_the_contexts(rag: TestClient, upstream: FakeUpstream) -> None:
    question = "How are parameters typed?"
    response = rag.post(
        "/ask",
        json={"question": question, "filters": {"doc_id": "paths.md"}, "include_contexts": True},
    )

    assert {c["doc_id"] for c in response.json()["contexts"]} == {"paths.md"}


def test_model_failure_and_bad_requests_get_clear_errors(
    rag: TestClient, upstream: FakeUpstream
) -> None:
    upstream.default = error(500, "Account acct_4242 is over quota; prompt was: When do...")

    failed = rag.post("/ask", json={"question": "When do background tasks run?"})
    empty = rag.post("/ask", json={"question": ""})
    extra = rag.post("/ask", json={"question": "x", "temperature": 2})

    assert failed.status_code == 502 and failed.json()["error"]["type"] == "model_unavailable"
    message = failed.json()["error"]["message"]
    assert "model behind the gateway failed" in message
    assert failed.headers["x-request-id"] in message  # what to quote to the operator
    assert "acct_4242" not in failed.text and "quota" not in failed.text  # the upstream's body
    assert empty.status_code == 422 and extra.status_code == 422
    assert "Traceback" not in failed.text


def wait_for_job(rag: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (job := rag.get(f"/ingest/{job_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def test_an_ingest_job_runs_and_reports_and_outside_paths_are_refused(
    rag: TestClient, corpus: Path, tmp_path: Path
) -> None:
    (corpus / "cookies.md").write_text("# Cookies\n\nRead cookies with the Cookie parameter.")
    started = rag.post("/ingest", json={"paths": ["."]})  # relative to the docs root
    job = wait_for_job(rag, started.json()["id"])
    outside = rag.post("/ingest", json={"paths": ["/etc"]})
    climbing = rag.post("/ingest", json={"paths": ["../../.."]})
    (corpus / ".env").write_text("OPENAI_API_KEY=sk-live-secret")
    hidden = rag.post("/ingest", json={"paths": [".env"]})
    answer = rag.post(
        "/ask", json={"question": "How do I read cookies?", "k": 1, "include_contexts": True}
    )

    assert started.status_code == 202
    assert job["status"] == "done", job
    assert job["paths"] == ["."]  # as the caller named them
    assert job["report"]["documents"] == {
        "added": 1,
        "updated": 0,
        "unchanged": 2,
        "pruned": 0,
        "skipped": 0,
    }
    for refused in (outside, climbing):
        assert refused.status_code == 400 and "RAG_INGEST_ROOTS" in refused.text
        assert str(tmp_path) not in refused.text  # the server's layout stays private
    assert hidden.status_code == 400 and "hidden" in hidden.json()["error"]["message"]
    assert str(tmp_path) not in str(job)
    assert answer.json()["contexts"][0]["doc_id"] == "cookies.md"
    missing = rag.get("/ingest/nope")
    assert missing.status_code == 404 and "expired" in missing.json()["error"]["message"]


def test_a_second_ingest_while_one_runs_is_refused_naming_the_running_job(
    rag: TestClient, corpus: Path
) -> None:
    for n in range(40):  # enough new pages that the first job is still embedding
        (corpus / f"page-{n}.md").write_text(f"# Page {n}\n\nNumber {n} " * 40)
    first = rag.post("/ingest", json={"paths": ["."]}).json()
    second = rag.post("/ingest", json={"paths": ["background.md"]})
    wait_for_job(rag, first["id"])
    third = rag.post("/ingest", json={"paths": ["background.md"]})

    assert second.status_code == 409
    assert first["id"] in second.json()["error"]["message"]
    assert second.headers["location"] == f"/ingest/{first['id']}"
    assert third.status_code == 202  # once it is done, the next one may start


def test_health_readiness_and_metrics(rag: TestClient, upstream: FakeUpstream) -> None:
    upstream.default = ok("They run after the response [1].")
    rag.post("/ask", json={"question": "When do background tasks run?"})
    rag.post("/ask", json={"question": "What is a good lasagna recipe?"})

    metrics = rag.get("/metrics").text

    assert rag.get("/healthz").json() == {"status": "ok"}
    assert rag.get("/readyz").json()["chunks"] == 2
    assert 'rag_answers_total{outcome="answered"} 1.0' in metrics
    assert 'rag_answers_total{outcome="refused"} 1.0' in metrics
    assert "rag_citations_per_answer_count 1.0" in metrics


def test_answer_evaluation_measures_citations_support_and_refusals(
    tmp_path: Path, corpus: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    import asyncio

    from prometheus_client import CollectorRegistry

    from kit.evaluate.answers import evaluate_answers
    from kit.evaluate.rag import Question
    from kit.rag_service.app import rag_service_with
    from kit.rag_service.metrics import RagMetrics

    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    settings = RagSettings(_env_file=None, environment="test", model="chain")  # type: ignore[call-arg]
    upstream.default = ok("Background tasks run after the response is sent [1].")
    questions = [
        Question("q1", "When do background tasks run?", frozenset({"background.md"})),
        Question("q2", "How are path parameters typed?", frozenset({"paths.md"})),
        Question("q3", "What is a good lasagna recipe?", frozenset()),
    ]

    async def run():  # type: ignore[no-untyped-def]
        with EmbeddedServer(gateway_app(tmp_path / "gw", upstream, local_client)) as gateway:
            llm = GatewayClient(gateway.url, api_key=KEY)
            async with rag_service_with(
                settings,
                RagMetrics(CollectorRegistry()),
                llm,
                local_client.embedder,
                store=store,
            ) as service:
                return await evaluate_answers(service.ask, questions)

    result = asyncio.run(run())

    metrics = result.metrics
    assert metrics["citation_validity"] == 1.0
    assert metrics["refusal_rate_unanswerable"] == 1.0 and metrics["refusal_rate_answerable"] == 0.0
    # The same scripted answer for both: it cites [1], each question's top source, but only
    # question 1's source supports what it says.
    assert metrics["cites_relevant_document"] == 1.0
    assert [row["support"] for row in result.rows[:2]] == [1.0, 0.0]
    assert metrics["support"] == 0.5
