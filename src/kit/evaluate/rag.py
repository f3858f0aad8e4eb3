"""`kit eval rag`: retrieval quality on a labelled question set, logged as an MLflow run.

    questions (JSONL: {"id", "question", "relevant": [doc ids], "filter": {...}?})
      -> retrieve top k -> hit rate@k, recall@k, MRR, nDCG@k per question -> means
      -> MLflow run: params (chunking, embedder, k, mode), metrics, per-question table
      -> gate: exit non-zero below --min-hit-rate / --min-mrr

Questions labelled with no relevant document ("unanswerable") are left out of retrieval
metrics; they measure refusals when answers are evaluated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.evaluate.metrics import distinct_documents, mean, retrieval_scores
from kit.rag.retrieval import Mode, Retriever


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    relevant: frozenset[str]
    filters: dict[str, str] = field(default_factory=dict)


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL question set; a malformed line is an error naming the line."""
    questions = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                Question(
                    str(row["id"]),
                    row["question"],
                    frozenset(row.get("relevant", [])),
                    row.get("filter", {}),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a question record ({exc})") from None
    return questions


@dataclass
class RetrievalEval:
    mode: Mode
    k: int
    metrics: dict[str, float]
    rows: list[dict[str, Any]]
    seconds: float

    def passes(self, min_hit_rate: float | None, min_mrr: float | None) -> list[str]:
        """The gate: what falls short, in words (empty when everything passes)."""
        failures = []
        hit = self.metrics[f"hit_rate_at_{self.k}"]
        if min_hit_rate is not None and hit < min_hit_rate:
            failures.append(f"hit rate@{self.k} {hit:.3f} < {min_hit_rate}")
        if min_mrr is not None and self.metrics["mrr"] < min_mrr:
            failures.append(f"MRR {self.metrics['mrr']:.3f} < {min_mrr}")
        return failures


def evaluate_retrieval(
    retriever: Retriever, questions: Sequence[Question], *, k: int, mode: Mode
) -> RetrievalEval:
    answerable = [q for q in questions if q.relevant]
    rows: list[dict[str, Any]] = []
    latencies = []
    started = time.perf_counter()
    for question in answerable:
        asked = time.perf_counter()
        # More chunks than k: several chunks of one document count as one document.
        hits = retriever.search(question.question, k=k * 4, mode=mode, filters=question.filters)
        latencies.append(time.perf_counter() - asked)
        ranked = distinct_documents(hit.doc_id for hit in hits)
        scores = retrieval_scores(ranked, set(question.relevant), k)
        rows.append(
            {
                "id": question.id,
                "question": question.question,
                "relevant": sorted(question.relevant),
                "retrieved": ranked[:k],
                **scores,
            }
        )
    metrics = mean(
        [
            {key: row[key] for key in row if key not in ("id", "question", "relevant", "retrieved")}
            for row in rows
        ]
    )
    latencies.sort()
    metrics["latency_p50_ms"] = 1000 * latencies[len(latencies) // 2] if latencies else 0.0
    metrics["latency_p95_ms"] = 1000 * latencies[int(len(latencies) * 0.95)] if latencies else 0.0
    return RetrievalEval(mode, k, metrics, rows, time.perf_counter() - started)


def log_to_mlflow(
    mlflow: Any, result: RetrievalEval, params: dict[str, Any], run_name: str | None = None
) -> str:
    """One MLflow run per evaluation: params, metrics, the per-question table. Returns its id."""
    with mlflow.start_run(run_name=run_name or f"retrieval-{result.mode}-k{result.k}") as run:
        mlflow.log_params(
            {**params, "k": result.k, "mode": result.mode, "questions": len(result.rows)}
        )
        mlflow.log_metrics(
            {key.replace("@", "_at_"): value for key, value in result.metrics.items()}
        )
        mlflow.log_table(
            data={
                key: [
                    json.dumps(row[key]) if isinstance(row[key], list) else row[key]
                    for row in result.rows
                ]
                for key in result.rows[0]
            },
            artifact_file="per_question.json",
        )
        return str(run.info.run_id)
