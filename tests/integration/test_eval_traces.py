"""`kit eval answers --from-traces`: answers the RAG service gave (traced into MLflow, sqlite,
with content capture on) are scored afterwards by MLflow's evaluator with the kit's scorers;
the judge is a gateway alias answered by the fake upstream."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kit.core.tracing import flush, stop_exporting
from kit.llm.local_client import LocalClient
from kit.llm.scripted import ScriptedModel
from kit.rag_service.app import create_app
from kit.rag_service.settings import RagSettings
from kit.web.embedded import EmbeddedServer
from tests.integration.gateway_helpers import KEY, gateway_app
from tests.integration.rag_helpers import ADMIN, indexed_docs, rag_keys
from tests.support.fake_openai import FakeUpstream, ok
from tests.support.servers import subprocess_env

KIT = str(Path(sys.executable).with_name("kit"))


@pytest.fixture
def answered(tmp_path: Path, local_client: LocalClient) -> Iterator[Path]:
    """Three questions answered with tracing into the data folder's MLflow store: a cited
    answer, an answer citing a source that was not retrieved, and a refusal."""
    root = tmp_path / "docs"
    store = indexed_docs(root, local_client.embedder)
    settings = RagSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "data",
        docs_root=root,
        trace_exporter="mlflow",
        trace_content=True,
    )
    model = ScriptedModel(
        [
            "Background tasks run after the response is sent [1].",
            "Background tasks run after the response is sent [4].",
        ]
    )
    app = create_app(
        settings, llm=model, store=store, embedder=local_client.embedder, keys=rag_keys()
    )
    try:
        with TestClient(app, headers=ADMIN) as client:
            for question in (
                "When do background tasks run?",
                "When exactly do background tasks run?",
                "What is a good lasagna recipe?",
            ):
                assert client.post("/ask", json={"question": question, "k": 1}).status_code == 200
        flush()
        yield tmp_path / "data"
    finally:
        stop_exporting()


def test_recorded_answers_are_scored_and_each_score_lands_on_its_trace(
    answered: Path, tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    verdict = {"verdicts": [{"sentence": "Background tasks run after...", "supported": True}]}
    upstream.default = ok(json.dumps(verdict))
    env = subprocess_env(tmp_path) | {
        "KIT_DATA_DIR": str(answered),
        "GATEWAY_API_KEY": KEY,
        "COLUMNS": "200",
    }
    with EmbeddedServer(gateway_app(tmp_path / "gw", upstream, local_client)) as gateway:
        result = subprocess.run(
            [KIT, "eval", "answers", "--from-traces", "--limit", "10", "--judge", "chain"],
            env=env | {"GATEWAY_URL": gateway.url},
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "scored 3 answers" in result.stdout
    metrics = {
        line.split()[0]: float(line.split()[1])
        for line in result.stdout.splitlines()
        if "/mean" in line
    }
    assert metrics["refused/mean"] == pytest.approx(1 / 3, abs=1e-3)  # printed to 3 places
    assert metrics["citations_valid/mean"] == pytest.approx(0.5)  # of the two answers
    assert metrics["faithfulness/mean"] == pytest.approx(1.0)
    judge_calls = [r for r in upstream.requests if r.path.endswith("/chat/completions")]
    assert len(judge_calls) == 2  # the refusal is not judged
    assert "Background tasks run after the response is sent" in json.dumps(judge_calls[0].body)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{answered / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rag-answers")  # MLflow copies scored traces
    assert experiment is not None
    traces = client.search_traces(locations=[experiment.experiment_id])
    assessments = [
        a for trace in traces for a in client.get_trace(trace.info.trace_id).info.assessments
    ]
    assert {"refused", "citations_valid", "support", "faithfulness"} <= {
        a.name for a in assessments
    }
    failed = [(a.name, a.error) for a in assessments if getattr(a, "error", None)]
    assert failed == []


def test_without_traces_it_says_how_to_record_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [KIT, "eval", "answers", "--from-traces"],
        env=subprocess_env(tmp_path) | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "No traces of answered questions" in result.stderr
    assert "KIT_TRACE_CONTENT=true" in result.stderr
