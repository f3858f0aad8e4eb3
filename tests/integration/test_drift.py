"""Drift monitoring on real parts: MiniLM, the whole FastAPI docs indexed in Qdrant, the RAG
service's /ask writing the query log, MLflow on sqlite and a real Pushgateway.

Reference: the 181 shipped evaluation questions. In-domain traffic: 42 other FastAPI questions
written for this test (not in the shipped set). Off-topic traffic: 42 BANKING77 queries. Both are
asked through /ask, so the windows come from the log the service wrote, as in production.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from qdrant_client import QdrantClient

from kit.core import tracking
from kit.drift.run import EXPERIMENT, DriftOptions, DriftResult, run_drift
from kit.drift.score import Thresholds
from kit.drift.store import read_records
from kit.llm.local_client import LocalClient
from kit.llm.scripted import ScriptedModel
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.qdrant_store import QdrantStore
from kit.rag_service.app import create_app
from kit.rag_service.settings import RagSettings
from tests.support.servers import free_port, require_tool, running

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "data" / "fastapi-docs" / "docs"
BANKING = REPO / "data" / "banking77" / "test.csv"
pytestmark = pytest.mark.timeout(900)

IN_DOMAIN = [
    "My endpoint takes a page number. How do I default it to 1 and reject zero?",
    "What is the difference between Path and Query for parameter validation?",
    "How can I check a query parameter against a regular expression?",
    "How do I declare that my GET endpoint returns a list of Pydantic models?",
    "Can a request body model contain another Pydantic model, for example an order with a "
    "nested shipping address?",
    "How do I make a POST endpoint answer with 201 Created?",
    "Which status code does the client get when its JSON body fails Pydantic validation?",
    "How do I read a custom X-Token request header in my path operation function?",
    "After a successful login I want to store a session id in a cookie. How do I set it on the "
    "response?",
    "How do I save an uploaded image to a folder on the server?",
    "Is it possible to receive several uploaded files in one request, and what type should the "
    "parameter have?",
    "How do I send a 404 with my own message when a record is missing?",
    "The docs page lists every endpoint in one long list. How do I group them?",
    "An old endpoint will be removed soon. How do I mark it as deprecated in the docs?",
    "How do I write a dependency that opens a database session for each request and closes it "
    "when the request is done?",
    "Can one dependency use another dependency?",
    "How do I protect some endpoints so that only requests with a valid OAuth2 bearer token get "
    "through?",
    "Which steps do I need to create signed JWT access tokens at login and check them on later "
    "requests?",
    "How do I get the currently logged-in user inside a protected endpoint?",
    "Should I write a middleware to log the method, path and duration of every request?",
    "My React app on localhost:3000 gets blocked when it calls my API on port 8000. How do I "
    "allow it?",
    "My main.py has grown to two thousand lines. How do I split the endpoints into several files "
    "with routers?",
    "How can I send a welcome email after signup without making the client wait for it?",
    "How do I change the title, description and version that appear at the top of the Swagger UI "
    "page?",
    "How do I serve images, CSS and JavaScript files from a static folder next to my API?",
    "How do I test my endpoints with pytest without starting a server?",
    "In tests, how do I make the database dependency use a throwaway SQLite file?",
    "I need to load a configuration file once when the app starts and release a connection pool "
    "when it stops. Where does that code go?",
    "How do I accept a websocket connection and echo every message back to the browser?",
    "How can an endpoint return plain text instead of JSON?",
    "My report endpoint builds a CSV with a million rows. Can I stream it to the client instead "
    "of building it in memory?",
    "How do I read my database URL and secret key from environment variables with type checking?",
    "What does a minimal Dockerfile for a FastAPI application look like, and which command "
    "should it run?",
    "How many Uvicorn workers should I start on an eight-core server?",
    "My API runs behind a proxy that adds a /backend prefix to every URL. What do I need to set "
    "so the docs still work?",
    "When should I declare my endpoint function with async def and when is a normal def the "
    "better choice?",
    "How do I create the tables with SQLModel and insert a row from a POST endpoint?",
    "Can one endpoint return different response models, for example a full profile for admins "
    "and a short one for everyone else?",
    "Some response fields are None most of the time. How do I leave them out?",
    "How can I show an example request body in the docs?",
    "Is there a way to generate a typed Python or TypeScript client from the OpenAPI schema of "
    "my app?",
    "My HTML login form posts username and password as form fields. How do I read them in FastAPI?",
]


def banking_queries(count: int) -> list[str]:
    with BANKING.open() as rows:
        texts = [row["text"] for row in csv.DictReader(rows)]
    picked = np.random.default_rng(0).choice(len(texts), size=count, replace=False)
    return [texts[i] for i in picked]


@pytest.fixture(scope="module")
def docs_store(local_client: LocalClient) -> Iterator[QdrantStore]:
    """The whole FastAPI docs in an in-memory Qdrant: about a minute of embedding, once."""
    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([CORPUS], store, local_client.embedder, IngestOptions(), root=CORPUS)
    yield store
    store.close()


def rag_settings(tmp_path: Path, **overrides: object) -> RagSettings:
    return RagSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "state",
        auth="open",  # about the query log; who may call is test_rag_auth.py's subject
        **overrides,
    )


@pytest.fixture
def rag(
    tmp_path: Path, docs_store: QdrantStore, local_client: LocalClient
) -> Iterator[tuple[TestClient, RagSettings]]:
    settings = rag_settings(tmp_path)
    app = create_app(
        settings,
        llm=ScriptedModel.repeating("The documentation covers this [1]."),
        store=docs_store,
        embedder=local_client.embedder,
    )
    with TestClient(app) as client:
        yield client, settings


def ask_all(client: TestClient, questions: list[str]) -> None:
    for question in questions:
        response = client.post("/ask", json={"question": question})
        assert response.status_code == 200, response.text


def test_ask_appends_each_question_to_the_query_log(
    rag: tuple[TestClient, RagSettings],
) -> None:
    client, settings = rag
    before = datetime.now(UTC)

    answered = client.post("/ask", json={"question": IN_DOMAIN[0]}).json()
    refused = client.post("/ask", json={"question": "What is a good lasagna recipe?"}).json()

    assert settings.query_log == settings.data_dir / "rag-queries.jsonl"  # the default place
    contents = read_records(settings.query_log)
    first, second = contents.records
    assert (answered["refused"], refused["refused"]) == (False, True)
    assert (first.question, first.refused) == (IN_DOMAIN[0], False)
    assert (second.question, second.refused) == ("What is a good lasagna recipe?", True)
    assert first.top_score is not None and first.top_score >= settings.min_relevance
    assert second.top_score is not None and second.top_score < settings.min_relevance
    assert (first.collection, first.embedder) == ("docs", "all-minilm-l6-v2")
    assert before <= first.ts <= second.ts <= datetime.now(UTC)


@pytest.mark.parametrize("overrides", [{"query_log": "off"}, {"query_log_sample_rate": 0.0}])
def test_the_query_log_can_be_turned_off(
    tmp_path: Path,
    docs_store: QdrantStore,
    local_client: LocalClient,
    overrides: dict[str, object],
) -> None:
    settings = rag_settings(tmp_path, **overrides)
    app = create_app(
        settings,
        llm=ScriptedModel.repeating("The documentation covers this [1]."),
        store=docs_store,
        embedder=local_client.embedder,
    )
    with TestClient(app) as client:
        assert client.post("/ask", json={"question": IN_DOMAIN[0]}).status_code == 200

    assert not (settings.data_dir / "rag-queries.jsonl").exists()


def drift_run(
    settings: RagSettings, store: QdrantStore, embedder: object, **options: object
) -> DriftResult:
    assert settings.query_log is not None
    return run_drift(
        settings,
        DriftOptions(log=settings.query_log, permutations=200, **options),  # type: ignore[arg-type]
        embedder=embedder,  # type: ignore[arg-type]
        store=store,
    )


def test_in_domain_traffic_passes_and_off_topic_traffic_drifts(
    rag: tuple[TestClient, RagSettings],
    docs_store: QdrantStore,
    local_client: LocalClient,
    tmp_path: Path,
) -> None:
    client, settings = rag
    pushgateway_tool = require_tool(
        "prometheus-pushgateway", "sudo apt-get install prometheus-pushgateway"
    )
    embedder = local_client.embedder
    metrics_file = tmp_path / "textfile" / "drift.prom"

    ask_all(client, IN_DOMAIN)
    calm = drift_run(settings, docs_store, embedder, last=len(IN_DOMAIN), metrics_file=metrics_file)
    ask_all(client, banking_queries(len(IN_DOMAIN)))
    port = free_port()
    with running(
        [pushgateway_tool, f"--web.listen-address=127.0.0.1:{port}"],
        port,
        tmp_path / "pushgateway.log",
    ):
        drifted = drift_run(
            settings,
            docs_store,
            embedder,
            last=len(IN_DOMAIN),
            pushgateway=f"http://127.0.0.1:{port}",
        )
        pushed = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

    # In-domain: every check, refusals included, within its threshold.
    calm_scores = {c.name: c.score for c in calm.scores.checks}
    assert set(calm_scores) == {
        "embedding_mmd",
        "length_psi",
        "far_from_corpus_share",
        "refusal_rate",
    }
    assert calm.scores.drifted == [], calm_scores
    assert calm_scores["far_from_corpus_share"] < Thresholds().far_share / 2  # 3 terse ones
    assert calm_scores["embedding_mmd"] < Thresholds().mmd / 2
    # Off-topic: every check over its threshold, the MMD with a p-value at its floor.
    drifted_scores = {c.name: c.score for c in drifted.scores.checks}
    assert [c.name for c in drifted.scores.drifted] == list(drifted_scores), drifted_scores
    assert drifted_scores["embedding_mmd"] > 3 * Thresholds().mmd
    assert drifted_scores["far_from_corpus_share"] > 0.9
    assert drifted.scores.details["embedding_mmd_p_value"] == pytest.approx(1 / 201)

    # The MLflow run: params, every score as a metric, the report and the scores as artifacts.
    from mlflow import MlflowClient

    tracking.start(settings, EXPERIMENT)
    mlflow = MlflowClient(tracking.tracking_uri(settings))
    assert drifted.run_id is not None
    run = mlflow.get_run(drifted.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["drifted"] == "true"
    for name, score in drifted_scores.items():
        assert run.data.metrics[name] == pytest.approx(score)
    assert run.data.params["embedder"] == "all-minilm-l6-v2"
    assert run.data.params["current_questions"] == str(len(IN_DOMAIN))
    assert run.data.params["reference_questions"] == "181"
    artifacts = {a.path for a in mlflow.list_artifacts(drifted.run_id)}
    assert drifted.report_path is not None and drifted.scores_path is not None
    assert {drifted.report_path.name, drifted.scores_path.name} <= artifacts
    assert json.loads(drifted.scores_path.read_text())["drifted"] is True

    # The report: plots as embedded images, the scores, the farthest banking questions.
    page = drifted.report_path.read_text()
    assert page.count('<img alt="plot" src="data:image/png;base64,') == 3
    assert "embedding_mmd" in page and "FAIL" in page
    farthest = int(np.argmin(drifted.current_nearest.similarity))
    assert drifted.current.questions[farthest].split()[0] in page

    # The textfile (calm run) and the Pushgateway (drifted run) hold the gauges.
    def gauges(text: str) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("check", "")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name in ("drift_score", "drift_threshold")
        }

    from_file = gauges(metrics_file.read_text())
    assert from_file[("drift_score", "embedding_mmd")] == pytest.approx(
        calm_scores["embedding_mmd"]
    )
    assert from_file[("drift_threshold", "length_psi")] == Thresholds().psi
    from_gateway = gauges(pushed)
    for name, score in drifted_scores.items():
        assert from_gateway[("drift_score", name)] == pytest.approx(score)
    assert 'job="kit-drift"' in pushed and 'collection="docs"' in pushed


def test_a_reference_window_from_the_log_and_a_current_file(
    docs_store: QdrantStore, local_client: LocalClient, tmp_path: Path
) -> None:
    """The log's last week as the reference and a file as the current window: the same
    questions a week apart do not drift."""
    from kit.drift.store import QueryLog, QueryRecord

    settings = rag_settings(tmp_path)
    assert settings.query_log is not None
    log = QueryLog(settings.query_log)
    week_ago = datetime.now(UTC) - timedelta(days=8)
    for question in IN_DOMAIN:
        log.append(QueryRecord(week_ago, question, refused=False, collection="docs"))
    current = tmp_path / "current.txt"
    current.write_text("\n".join(IN_DOMAIN) + "\n")

    result = drift_run(
        settings,
        docs_store,
        local_client.embedder,
        reference_span=(timedelta(days=14), timedelta(days=7)),
        current=current,
    )

    assert len(result.reference) == len(result.current) == len(IN_DOMAIN)
    assert result.scores.drifted == []
    assert "refusal_rate" not in result.scores.by_name()  # a file says nothing of refusals
