"""Baselines a fine-tune must beat to be worth its cost, scored by the same harness.

    logreg       frozen MiniLM embeddings + logistic regression (trains in seconds)
    knn          frozen MiniLM embeddings + k nearest training queries (no training at all)
    zero-shot    SmolLM2 (or any gateway alias) given the 77 labels and the query
    few-shot     the same, shown the 5 most similar training queries with their labels first
    cloud        a cloud model through the gateway, few-shot, when its key is set

The prompt baselines are slow on CPU (a generation per query), so they run on a stratified
sample of the test split (`prompt_sample`); the table says how many rows each row of it saw.
Cost per 1,000 queries is $0 for local models; for a cloud model it comes from the tokens the
gateway reported and LiteLLM's price table (src/kit/gateway/pricing.py).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kit.core.ports import ChatMessage, ChatModel, Embedder
from kit.finetune.data import Example, Splits, _stratified_sample
from kit.finetune.evaluate import Scores, score


@dataclass
class BaselineResult:
    name: str
    scores: Scores
    train_seconds: float
    cost_per_1k: float  # USD
    note: str = ""


class EmbeddingBaseline:
    """A scikit-learn classifier on frozen MiniLM vectors."""

    def __init__(self, embedder: Embedder, estimator: Any) -> None:
        self.embedder = embedder
        self.estimator = estimator

    def fit(self, rows: Sequence[Example], vectors: npt.NDArray[np.float32]) -> None:
        self.estimator.fit(vectors, [r.label for r in rows])

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(label) for label in self.estimator.predict(self.embedder.embed(texts))]


SYSTEM = (
    "You route banking customer queries. Reply with exactly one intent label from this list, "
    "and nothing else:\n{labels}"
)


class PromptBaseline:
    """A chat model asked for the label; the reply is mapped onto the closest valid label."""

    def __init__(
        self,
        client: ChatModel,
        model: str,
        labels: list[str],
        *,
        shots: int = 0,
        train: Sequence[Example] = (),
        train_vectors: npt.NDArray[np.float32] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.client, self.model, self.labels, self.shots = client, model, labels, shots
        self.train, self.train_vectors, self.embedder = list(train), train_vectors, embedder
        self.system = SYSTEM.format(labels="\n".join(labels))
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.queries = 0
        self.answered_by: set[str] = set()

    def _messages(
        self, text: str, query_vector: npt.NDArray[np.float32] | None
    ) -> list[ChatMessage]:
        messages: list[ChatMessage] = [{"role": "system", "content": self.system}]
        if self.shots and query_vector is not None and self.train_vectors is not None:
            nearest = np.argsort(-(self.train_vectors @ query_vector))[: self.shots]
            for i in nearest[::-1]:  # the most similar example last, closest to the query
                messages.append({"role": "user", "content": self.train[i].text})
                messages.append({"role": "assistant", "content": self.train[i].label})
        messages.append({"role": "user", "content": text})
        return messages

    def predict(self, texts: Sequence[str]) -> list[str]:
        vectors = self.embedder.embed(texts) if self.shots and self.embedder else None
        predicted = []
        for n, text in enumerate(texts):
            messages = self._messages(text, None if vectors is None else vectors[n])
            result = self.client.chat(messages, model=self.model, max_tokens=16, temperature=0.0)
            self.prompt_tokens += result.usage.prompt_tokens
            self.completion_tokens += result.usage.completion_tokens
            self.queries += 1
            self.answered_by.add(result.model)
            predicted.append(to_label(result.text, self.labels))
        return predicted


def to_label(reply: str, labels: list[str]) -> str:
    """The label a reply names: exact, then contained, then the closest spelling."""
    text = reply.strip().strip("`'\".").lower().replace(" ", "_")
    if text in labels:
        return text
    contained = [label for label in labels if label in text]
    if contained:
        return max(contained, key=len)
    return max(labels, key=lambda label: difflib.SequenceMatcher(None, text, label).ratio())


def embedding_baselines(
    splits: Splits, embedder: Embedder, test: Sequence[Example]
) -> tuple[list[BaselineResult], npt.NDArray[np.float32]]:
    """logreg and kNN on frozen embeddings; also returns the training vectors for few-shot."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    started = time.perf_counter()
    vectors = embedder.embed([r.text for r in splits.train])
    embed_seconds = time.perf_counter() - started
    results = []
    for name, estimator in (
        ("logreg (frozen MiniLM)", LogisticRegression(C=20.0, max_iter=2000)),
        ("kNN k=5 (frozen MiniLM)", KNeighborsClassifier(5, metric="cosine", weights="distance")),
    ):
        baseline = EmbeddingBaseline(embedder, estimator)
        fitting = time.perf_counter()
        baseline.fit(splits.train, vectors)
        seconds = embed_seconds + time.perf_counter() - fitting
        results.append(BaselineResult(name, score(baseline, test), seconds, 0.0))
    return results, vectors


def prompt_baseline(
    name: str,
    baseline: PromptBaseline,
    test: Sequence[Example],
    sample: int,
    seed: int,
    price_per_token: tuple[float, float] = (0.0, 0.0),
) -> BaselineResult:
    rows = _stratified_sample(list(test), sample, seed)
    scores = score(baseline, rows)
    per_query = (
        baseline.prompt_tokens * price_per_token[0]
        + baseline.completion_tokens * price_per_token[1]
    ) / max(1, baseline.queries)
    note = f"{len(rows)}-query sample; answered by {', '.join(sorted(baseline.answered_by))}"
    return BaselineResult(name, scores, 0.0, 1000 * per_query, note)


def run_baselines(
    splits: Splits,
    embedder: Embedder,
    client: ChatModel | None,
    *,
    local_model: str = "local",
    cloud_model: str | None = None,
    cloud_price: tuple[float, float] = (0.0, 0.0),
    prompt_sample: int = 200,
    seed: int = 0,
    progress: Any = lambda message: None,
) -> list[BaselineResult]:
    """Every baseline on `splits.test` (prompt baselines on a sample of it)."""
    results, train_vectors = embedding_baselines(splits, embedder, splits.test)
    for result in results:
        progress(f"{result.name}: accuracy {result.scores.accuracy:.4f}")
    if client is None or prompt_sample <= 0:
        return results
    runs = [
        ("zero-shot", local_model, 0, (0.0, 0.0)),
        ("few-shot, 5 nearest", local_model, 5, (0.0, 0.0)),
    ]
    if cloud_model:
        runs.append(("few-shot, 5 nearest", cloud_model, 5, cloud_price))
    for label, model, shots, price in runs:
        baseline = PromptBaseline(
            client,
            model,
            splits.labels,
            shots=shots,
            train=splits.train,
            train_vectors=train_vectors,
            embedder=embedder,
        )
        result = prompt_baseline(
            f"{model} {label}", baseline, splits.test, prompt_sample, seed, price
        )
        progress(f"{result.name}: accuracy {result.scores.accuracy:.4f} ({result.note})")
        results.append(result)
    return results


def log_baselines(mlflow: Any, results: Sequence[BaselineResult], splits: Splits) -> None:
    """One MLflow run per baseline, beside the fine-tunes, with the same metric names."""
    for result in results:
        with mlflow.start_run(run_name=f"baseline: {result.name}"):
            mlflow.set_tag("kind", "baseline")
            mlflow.log_params(
                {
                    "baseline": result.name,
                    "dataset.sha256": splits.version["sha256"],
                    "dataset.test_id": splits.test_id,
                    "test_rows_scored": result.scores.rows,
                    "note": result.note or "-",
                }
            )
            mlflow.log_metrics(
                result.scores.metrics("test")
                | {
                    "train_seconds": result.train_seconds,
                    "cost_per_1k_queries_usd": result.cost_per_1k,
                }
            )
