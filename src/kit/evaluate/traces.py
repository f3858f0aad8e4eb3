"""Score answers the RAG service has already given, from their traces, with MLflow's evaluator.

    kit eval answers --from-traces --limit 50 [--judge gpt-4o-mini]

A trace of a question (src/kit/core/tracing.py) holds what a fresh evaluation would produce:
with KIT_TRACE_CONTENT=true, the `rag ask` span records the question and the answer, the
`retrieval` span the passages, and the citation check's results are attributes of `rag ask`
either way. So production traffic can be scored after the fact, without asking again.

The scoring is MLflow's GenAI evaluation API, `mlflow.genai.evaluate`, over the traces found by
`mlflow.search_traces`: it runs the scorers below on each trace, copies the trace into the
evaluation's run (experiment `rag-answers`) with every score attached as an assessment (the
MLflow UI shows them beside the spans), and logs the aggregates as the run's metrics.
What is the kit's own: the scorers. MLflow's built-in LLM judges (`mlflow.genai.scorers`)
call a model by provider name through their own clients, not through the kit's gateway and its
keys, budgets and fallbacks; so faithfulness is judged by the kit's judge (kit.evaluate.judge:
a JSON verdict per sentence, validated and retried), wrapped as an MLflow scorer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.evaluate.judge import Judge

ASK_SPAN = "rag ask"


@dataclass(frozen=True)
class RecordedAnswer:
    """One answered question, read back from its trace."""

    trace_id: str
    question: str | None  # None when content capture was off for that request
    answer: str | None
    sources: list[str]  # the retrieved passages' text (empty without content capture)
    refused: bool
    invalid_citations: int
    support: float


def recorded_answer(trace: Any) -> RecordedAnswer | None:
    """The answer a trace of `/ask` recorded, or None for a trace of anything else."""
    spans = {span.name: span for span in trace.data.spans}
    ask = spans.get(ASK_SPAN)
    if ask is None:
        return None
    retrieval = next((s for s in trace.data.spans if s.name.startswith("retrieval ")), None)
    documents = retrieval.get_attribute("gen_ai.retrieval.documents") if retrieval else None
    if isinstance(documents, str):  # recorded as JSON text
        documents = json.loads(documents)
    return RecordedAnswer(
        trace_id=trace.info.trace_id,
        question=ask.get_attribute("kit.rag.question"),
        answer=ask.get_attribute("kit.rag.answer"),
        sources=[str(d.get("content", "")) for d in documents or []],
        refused=bool(ask.get_attribute("kit.rag.refused")),
        invalid_citations=int(ask.get_attribute("kit.rag.invalid_citations") or 0),
        support=float(ask.get_attribute("kit.rag.support") or 0.0),
    )


def answer_scorers(judge: Judge | None = None) -> list[Any]:
    """The kit's answer metrics as MLflow scorers, each reading the trace it is given."""
    from mlflow.entities import Feedback
    from mlflow.genai import scorer

    def reading(trace: Any) -> RecordedAnswer:
        recorded = recorded_answer(trace)
        if recorded is None:  # search_answer_traces keeps only traces of /ask
            raise ValueError(f"trace {trace.info.trace_id} has no {ASK_SPAN!r} span")
        return recorded

    @scorer(name="refused")
    def refused(trace: Any) -> bool:
        return reading(trace).refused

    @scorer(name="citations_valid")
    def citations_valid(trace: Any) -> Feedback | None:
        recorded = reading(trace)
        if recorded.refused:
            return None  # nothing was cited; not a pass, not a failure
        return Feedback(
            value=recorded.invalid_citations == 0,
            rationale=f"{recorded.invalid_citations} citation(s) of no retrieved source",
        )

    @scorer(name="support")
    def support(trace: Any) -> float | None:
        recorded = reading(trace)
        return None if recorded.refused else recorded.support

    scorers: list[Any] = [refused, citations_valid, support]
    if judge is not None:
        scorers.append(_faithfulness(judge, reading))
    return scorers


def _faithfulness(judge: Judge, reading: Callable[[Any], RecordedAnswer]) -> Any:
    from mlflow.entities import Feedback
    from mlflow.genai import scorer

    @scorer(name="faithfulness")
    def faithfulness(trace: Any) -> Feedback | None:
        recorded = reading(trace)
        if recorded.refused:
            return None
        if not (recorded.question and recorded.answer and recorded.sources):
            return Feedback(
                value=None,
                error="the trace holds no question, answer or passages: record them with "
                "KIT_TRACE_CONTENT=true to judge faithfulness",
            )
        # MLflow runs scorers in worker threads, which have no event loop of their own.
        judged = asyncio.run(judge.judge(recorded.question, recorded.answer, recorded.sources))
        if judged is None:
            return Feedback(value=None, error=f"the judge {judge.model} gave no valid verdict")
        unsupported = [v.sentence for v in judged.verdicts if not v.supported]
        return Feedback(
            value=judged.faithfulness,
            rationale=f"unsupported: {unsupported}" if unsupported else "every sentence supported",
        )

    return faithfulness


def search_answer_traces(mlflow: Any, experiment: str, limit: int) -> tuple[Any, int]:
    """The latest `limit` traces of answered questions in `experiment`, as the DataFrame
    `mlflow.genai.evaluate` takes (None when there is no such experiment), and how many traces
    of other requests were passed over."""
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return None, 0
    traces = mlflow.search_traces(
        locations=[found.experiment_id],
        max_results=limit * 4,  # traces of other requests (ingest jobs, gateway calls) too
        order_by=["timestamp_ms DESC"],
    )
    if traces.empty:
        return traces, 0
    keep = traces["trace"].map(lambda trace: recorded_answer(_as_trace(trace)) is not None)
    return traces[keep].head(limit), int((~keep).sum())


def _as_trace(value: Any) -> Any:
    """search_traces' DataFrame holds each trace as a Trace, or as its JSON text."""
    if isinstance(value, str):
        from mlflow.entities import Trace

        return Trace.from_json(value)
    return value
