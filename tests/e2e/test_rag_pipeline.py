"""The RAG data pipeline as a user runs it: ingest the shipped FastAPI docs, search, evaluate.

The corpus is ingested once for this module (about a minute on 2 cores); the evaluation then
checks the claims the kit makes about it, on the numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

KIT = str(Path(sys.executable).with_name("kit"))
# Slow tier, run by `make test-all` only: ingests the whole corpus and evaluates it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "data/fastapi-docs/docs"
QUESTIONS = REPO / "data/rag/fastapi-docs-questions.jsonl"


def kit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KIT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import os

    data = tmp_path_factory.mktemp("rag-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIT_", "QDRANT_", "MLFLOW_"))}
    env |= {
        "KIT_ENV": "test",
        "KIT_DATA_DIR": str(data),
        "KIT_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }
    result = kit("ingest", str(CORPUS), "--strict", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return env


def test_ingest_reports_every_page_and_a_rerun_embeds_nothing(ingested: dict[str, str]) -> None:
    reports = sorted((Path(ingested["KIT_DATA_DIR"]) / "reports").glob("ingest-*.json"))
    first = json.loads(reports[-1].read_text())

    again = kit("ingest", str(CORPUS), env=ingested)
    latest = json.loads(
        sorted((Path(ingested["KIT_DATA_DIR"]) / "reports").glob("ingest-*.json"))[-1].read_text()
    )

    assert first["documents"]["added"] == 125 and first["documents"]["skipped"] == 0
    assert first["chunks"]["added"] > 1000
    assert again.returncode == 0
    assert latest["documents"]["unchanged"] == 125 and latest["chunks"]["added"] == 0


def test_search_finds_the_page_that_answers(ingested: dict[str, str]) -> None:
    result = kit(
        "search",
        "How do I declare a path parameter with a type?",
        "--k",
        "3",
        "--json",
        env=ingested,
    )

    hits = json.loads(result.stdout)
    assert result.returncode == 0 and len(hits) == 3
    assert hits[0]["doc_id"] == "fastapi-docs/docs/tutorial/path-params.md"  # below KIT_DOCS_ROOT
    assert hits[0]["source"] == hits[0]["doc_id"]  # no server path in what a search returns


def test_hybrid_beats_dense_and_keyword_and_passes_the_gate(ingested: dict[str, str]) -> None:
    result = kit(
        "eval",
        "rag",
        "--questions",
        str(QUESTIONS),
        "--mode",
        "dense",
        "--mode",
        "keyword",
        "--mode",
        "hybrid",
        "--min-hit-rate",
        "0.90",
        "--min-mrr",
        "0.80",
        env=ingested,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    rows = {
        line.split()[0]: [float(x) for x in line.split()[1:5]]
        for line in result.stdout.splitlines()
        if line.split()[:1] in (["dense"], ["keyword"], ["hybrid"])
    }
    hybrid, dense, keyword = rows["hybrid"], rows["dense"], rows["keyword"]
    # hit@5, recall@5, MRR, nDCG@5: hybrid at least as good everywhere, better on MRR and nDCG.
    assert all(h >= d and h >= k for h, d, k in zip(hybrid, dense, keyword, strict=True))
    assert hybrid[2] > max(dense[2], keyword[2]) and hybrid[3] > max(dense[3], keyword[3])
    assert hybrid[0] >= 0.90 and hybrid[2] >= 0.80


def test_the_gate_fails_below_the_bar(ingested: dict[str, str]) -> None:
    result = kit(
        "eval",
        "rag",
        "--questions",
        str(QUESTIONS),
        "--mode",
        "keyword",
        "--min-mrr",
        "0.999",
        env=ingested,
    )

    assert result.returncode == 1
    assert "below the bar" in result.stderr and "MRR" in result.stderr


def test_every_evaluation_is_an_mlflow_run(ingested: dict[str, str]) -> None:
    import mlflow

    from kit.core.tracking import point_mlflow_at

    point_mlflow_at(f"sqlite:///{ingested['KIT_DATA_DIR']}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["rag-retrieval"])

    assert len(runs) >= 4
    hybrid = runs[runs["params.mode"] == "hybrid"].iloc[0]
    assert hybrid["params.k"] == "5" and hybrid["params.embedder"] == "all-minilm-l6-v2"
    assert hybrid["metrics.hit_rate_at_5"] >= 0.9
    artifacts = mlflow.artifacts.list_artifacts(run_id=hybrid["run_id"])
    assert "per_question.json" in [a.path for a in artifacts]
