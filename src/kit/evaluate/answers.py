"""Answer quality over a question set: citations, faithfulness, refusals, latency.

For each question the RAG service answers as it would in production; then:

    citation validity   the share of the model's citations that point at a retrieved source
    support             the share of answer sentences supported by their cited source (lexical)
    refusal rate        on answerable questions (should be low) and on unanswerable ones
                        (labelled with no relevant document: should be high)
    latency p50 / p95   of the whole answer

The lexical support check is cheap and runs anywhere; it cannot tell a paraphrase from a
contradiction, which is what an LLM judge (a capable model through the gateway) is for: given
one, each answered question also gets `judge_faithfulness` (src/kit/evaluate/judge.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kit.evaluate.judge import Judge
from kit.evaluate.rag import Question


class Answered(Protocol):
    """What the evaluation reads from an answer (kit.rag_service.service.AskResult fits)."""

    @property
    def answer(self) -> Any: ...

    @property
    def latency_ms(self) -> dict[str, float]: ...

    @property
    def contexts(self) -> Sequence[Any]: ...  # the retrieved hits, each with a `text`


Ask = Callable[[str], Awaitable[Answered]]


@dataclass
class AnswerEval:
    metrics: dict[str, float]
    rows: list[dict[str, Any]]


async def evaluate_answers(
    ask: Ask, questions: Sequence[Question], judge: Judge | None = None
) -> AnswerEval:
    rows: list[dict[str, Any]] = []
    for question in questions:
        result = await ask(question.question)
        answer = result.answer
        judged = None
        if judge is not None and not answer.refused:
            sources = [hit.text for hit in result.contexts]
            judged = await judge.judge(question.question, answer.text, sources)
        valid = len([c for c in answer.citations if not c.inferred])
        invalid = len(answer.invalid_citations)
        rows.append(
            {
                "id": question.id,
                "answerable": bool(question.relevant),
                "refused": answer.refused,
                "citations": valid,
                "invalid_citations": invalid,
                "cites_relevant": any(c.doc_id in question.relevant for c in answer.citations),
                "support": answer.support,
                "judge_faithfulness": judged.faithfulness if judged else None,
                "judge_failed": judge is not None and not answer.refused and judged is None,
                "latency_ms": result.latency_ms.get("total", 0.0),
                "answer": answer.text,
            }
        )
    return AnswerEval(_aggregate(rows, judged=judge is not None), rows)


def _aggregate(rows: list[dict[str, Any]], *, judged: bool) -> dict[str, float]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if not r["refused"]]
    cited = sum(r["citations"] for r in rows)
    latencies = sorted(r["latency_ms"] for r in rows)

    def share(items: list[dict[str, Any]], key: str) -> float:
        return sum(bool(r[key]) for r in items) / len(items) if items else 0.0

    metrics = {
        "citation_validity": cited / (cited + sum(r["invalid_citations"] for r in rows))
        if cited
        else 0.0,
        "support": sum(r["support"] for r in answered) / len(answered) if answered else 0.0,
        "cites_relevant_document": share(answered, "cites_relevant"),
        "refusal_rate_answerable": share(answerable, "refused"),
        "refusal_rate_unanswerable": share(unanswerable, "refused"),
        "latency_p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "latency_p95_ms": latencies[int(len(latencies) * 0.95)] if latencies else 0.0,
    }
    if judged:  # the mean over answers the judge scored; failures are counted, not guessed
        scores = [r["judge_faithfulness"] for r in answered if r["judge_faithfulness"] is not None]
        metrics["judge_faithfulness"] = sum(scores) / len(scores) if scores else 0.0
        metrics["judge_failures"] = float(sum(r["judge_failed"] for r in answered))
    return metrics
