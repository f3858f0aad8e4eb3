"""Compare prompt variants on a labelled test set: each variant one MLflow run, one table row.

    results = compare_variants(client, "local", variants, cases, mlflow=tracking.start(...))
    print(results_table(results))
    # variant      answered by            accuracy  valid  p50 ms  p95 ms  tok in  tok out
    # zero-shot    smollm2-135m-instruct      0.15   0.15     368    4643      73     11.9

A variant is a template, how to pick few-shot examples, a token budget, and a reader that turns a
reply into an answer (raising ValueError when it cannot). Per variant it measures:

    accuracy      correct answers / all cases (an unreadable reply counts as wrong)
    valid_rate    replies the reader could read / all cases (format-following, e.g. valid JSON)
    latency       p50 / p95 of one chat call, milliseconds
    tokens        mean prompt and completion tokens per case, as the model reported them

Every variant sees the same cases in the same order; params record the template id, the model
and a hash of the cases, so two runs' numbers are comparable only when those match.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kit.core.ports import ChatMessage, ChatModel
from kit.prompting.chat import bind
from kit.prompting.fewshot import Example, few_shot
from kit.prompting.templates import PromptTemplate

EXPERIMENT = "prompt-variants"


class ExampleSelector(Protocol):
    """fewshot.FixedExamples and fewshot.NearestExamples."""

    def select(self, text: str, k: int) -> list[Example]: ...


@dataclass(frozen=True)
class Case:
    inputs: Mapping[str, Any]  # the template's variables: {"query": "..."}
    expected: str


@dataclass(frozen=True)
class Variant:
    name: str
    template: PromptTemplate
    read: Callable[[str], str]  # reply -> answer; raises ValueError when there is none
    examples: ExampleSelector | None = None
    shots: int = 0
    max_tokens: int = 16
    shared: Mapping[str, Any] = field(default_factory=dict)  # values for every case: labels
    example_key: str = "query"  # the input the nearest examples are chosen by

    def messages(self, case: Case) -> list[ChatMessage]:
        values = {**self.shared, **case.inputs}
        if self.examples is None or self.shots == 0:
            return self.template.render(**values)
        chosen = self.examples.select(str(values[self.example_key]), self.shots)
        return few_shot(self.template, chosen, **values)


@dataclass
class VariantResult:
    variant: str
    template: str
    model: str
    metrics: dict[str, float]
    rows: list[dict[str, Any]]
    answered_by: list[str]
    run_id: str | None = None


def cases_id(cases: Sequence[Case]) -> str:
    """A short hash naming the exact cases: compare numbers only between equal ids."""
    text = "\n".join(json.dumps([dict(c.inputs), c.expected], sort_keys=True) for c in cases)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_variant(
    client: ChatModel, model: str | None, variant: Variant, cases: Sequence[Case]
) -> VariantResult:
    """One chat call per case; `model` None means the client's default model."""
    chat = bind(client, model, max_tokens=variant.max_tokens)
    rows: list[dict[str, Any]] = []
    answered_by: set[str] = set()
    for case in cases:
        started = time.perf_counter()
        result = chat(variant.messages(case))
        latency_ms = 1000 * (time.perf_counter() - started)
        answered_by.add(result.model)
        try:
            answer, error = variant.read(result.text), ""
        except ValueError as exc:
            answer, error = None, str(exc)
        rows.append(
            {
                "expected": case.expected,
                "answer": answer,
                "correct": answer == case.expected,
                "valid": answer is not None,
                "error": error,
                "reply": result.text,
                "latency_ms": round(latency_ms, 1),
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
            }
        )
    return VariantResult(
        variant.name,
        variant.template.id,
        model or ",".join(sorted(answered_by)),
        _metrics(rows),
        rows,
        sorted(answered_by),
    )


def _metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    n = max(1, len(rows))
    latencies = sorted(row["latency_ms"] for row in rows)
    return {
        "accuracy": sum(row["correct"] for row in rows) / n,
        "valid_rate": sum(row["valid"] for row in rows) / n,
        "latency_p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "latency_p95_ms": latencies[int(len(latencies) * 0.95)] if latencies else 0.0,
        "prompt_tokens_mean": sum(row["prompt_tokens"] for row in rows) / n,
        "completion_tokens_mean": sum(row["completion_tokens"] for row in rows) / n,
    }


def log_variant(mlflow: Any, result: VariantResult, variant: Variant, cases: Sequence[Case]) -> str:
    """One MLflow run: params, metrics, the per-case table and the first prompt as sent."""
    with mlflow.start_run(run_name=f"{result.variant} ({result.model})") as run:
        mlflow.set_tag("kind", "prompt-variant")
        mlflow.log_params(
            {
                "variant": result.variant,
                "template": result.template,
                "model": result.model,
                "answered_by": ",".join(result.answered_by),
                "shots": variant.shots if variant.examples is not None else 0,
                "examples": type(variant.examples).__name__ if variant.examples else "none",
                "max_tokens": variant.max_tokens,
                "cases": len(cases),
                "cases_id": cases_id(cases),
            }
        )
        mlflow.log_metrics(result.metrics)
        mlflow.log_table(
            data={key: [row[key] for row in result.rows] for key in result.rows[0]},
            artifact_file="per_case.json",
        )
        mlflow.log_dict({"messages": variant.messages(cases[0])}, "first_prompt.json")
        return str(run.info.run_id)


def compare_variants(
    client: ChatModel,
    model: str | None,
    variants: Sequence[Variant],
    cases: Sequence[Case],
    *,
    mlflow: Any = None,
    progress: Callable[[str], None] = lambda message: None,
) -> list[VariantResult]:
    """Run every variant over the same cases; log each as an MLflow run when `mlflow` is given
    (the module returned by `kit.core.tracking.start(settings, EXPERIMENT)`)."""
    if not cases:
        raise ValueError("compare_variants needs at least one case")
    results = []
    for variant in variants:
        result = run_variant(client, model, variant, cases)
        if mlflow is not None:
            result.run_id = log_variant(mlflow, result, variant, cases)
        progress(f"{variant.name}: accuracy {result.metrics['accuracy']:.2f}")
        results.append(result)
    return results


def results_table(results: Sequence[VariantResult]) -> str:
    """The comparison as fixed-width text, one row per variant. "answered by" is the model that
    really replied: a cloud alias that fell back to the local model shows both."""
    columns = ("accuracy", "valid", "p50 ms", "p95 ms", "tok in", "tok out")
    header = f"{'variant':28} {'answered by':22} " + " ".join(f"{c:>8}" for c in columns)
    lines = [header, "-" * len(header)]
    for r in results:
        m = r.metrics
        numbers = (
            f"{m['accuracy']:8.2f} {m['valid_rate']:8.2f} "
            f"{m['latency_p50_ms']:8.0f} {m['latency_p95_ms']:8.0f} "
            f"{m['prompt_tokens_mean']:8.0f} {m['completion_tokens_mean']:8.1f}"
        )
        lines.append(f"{r.variant:28} {','.join(r.answered_by):22} {numbers}")
    return "\n".join(lines)
