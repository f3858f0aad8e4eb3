"""The RAG service's Prometheus metrics: answers, refusals, citations, time per stage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from kit.web.metrics import LATENCY_BUCKETS


class RagMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.answers = Counter(
            "rag_answers",
            "Questions answered, by outcome (answered or refused).",
            ["outcome"],
            registry=registry,
        )
        self.stage = Histogram(
            "rag_stage_duration_seconds",
            "Time per stage of an answer (retrieve, rerank, generate).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.citations = Histogram(
            "rag_citations_per_answer",
            "Valid citations in an answer.",
            buckets=(0, 1, 2, 3, 5, 8, 13),
            registry=registry,
        )
        self.invalid_citations = Counter(
            "rag_invalid_citations",
            "Citations pointing at no retrieved source.",
            registry=registry,
        )
