"""One evaluation harness for every intent model: fine-tunes and baselines are scored alike.

    accuracy, macro-F1          on the same test rows (the dataset's test file, untouched)
    latency per query (ms)      wall time of predicting the whole set, divided by its size
    per-class report            precision, recall, F1 and support per label (sklearn)
    confusion matrix            a PNG, labels in order, for MLflow
    sample predictions          the first N rows with the gold and predicted label

A model is anything with `predict(texts) -> labels`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kit.finetune.data import Example


class IntentModel(Protocol):
    def predict(self, texts: Sequence[str]) -> list[str]: ...


@dataclass
class Scores:
    accuracy: float
    macro_f1: float
    latency_ms: float  # per query
    rows: int
    predictions: list[str] = field(repr=False)
    report: dict[str, Any] = field(repr=False)

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_accuracy": self.accuracy,
            f"{prefix}_macro_f1": self.macro_f1,
            f"{prefix}_latency_ms_per_query": self.latency_ms,
        }


def score(model: IntentModel, rows: Sequence[Example]) -> Scores:
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    started = time.perf_counter()
    predicted = model.predict([r.text for r in rows])
    seconds = time.perf_counter() - started
    gold = [r.label for r in rows]
    report: dict[str, Any] = classification_report(
        gold, predicted, output_dict=True, zero_division=0
    )
    return Scores(
        accuracy=float(accuracy_score(gold, predicted)),
        macro_f1=float(f1_score(gold, predicted, average="macro", zero_division=0)),
        latency_ms=1000 * seconds / max(1, len(rows)),
        rows=len(rows),
        predictions=predicted,
        report=report,
    )


def confusion_plot(
    rows: Sequence[Example], predicted: Sequence[str], labels: list[str], path: Path
) -> Path:
    """The confusion matrix as a PNG: 77 labels are too many to read, but the off-diagonal
    dots show which intents are confused, and the per-class report names them."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix([r.label for r in rows], predicted, labels=labels)
    figure, axes = plt.subplots(figsize=(14, 12), dpi=80)
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
    axes.set_yticks(range(len(labels)), labels, fontsize=5)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def sample_table(
    rows: Sequence[Example], predicted: Sequence[str], limit: int = 200
) -> dict[str, list[Any]]:
    shown = list(zip(rows, predicted, strict=True))[:limit]
    return {
        "text": [r.text for r, _ in shown],
        "label": [r.label for r, _ in shown],
        "predicted": [p for _, p in shown],
        "correct": [r.label == p for r, p in shown],
    }
