"""One question answered: retrieve, refuse if nothing is relevant, prompt, generate, check.

Also owns the ingestion jobs of `POST /ingest` (services/rag/jobs.py: one at a time, expiring),
run below KIT_DOCS_ROOT. The model is reached only through the gateway client; retrieval and
ingestion only through `pipelines`. Who may call is the routes' business (services/rag/deps.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipelines.ingest.index import ChunkStore
from pipelines.ingest.paths import DocsRoot
from pipelines.ingest.run import IngestOptions, ingest
from pipelines.rerank import Reranker
from pipelines.retrieval import Hit, Retriever
from services.common.embedders import Embedder
from services.common.llm import ChatMessage, ChatResult
from services.common.logging import get_logger
from services.rag.answer import REFUSAL, CheckedAnswer, check, load_prompt
from services.rag.jobs import IngestJobs
from services.rag.metrics import RagMetrics
from services.rag.settings import RagSettings

log = get_logger("rag")


class AsyncLLM(Protocol):
    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult: ...


@dataclass(frozen=True)
class AskResult:
    answer: CheckedAnswer
    contexts: list[Hit]
    latency_ms: dict[str, float]
    refusal_reason: str | None = None
    model: str | None = None
    relevance: float = 0.0  # best dense cosine similarity of any chunk: what refusals go by


class RagService:
    def __init__(
        self,
        settings: RagSettings,
        store: ChunkStore,
        embedder: Embedder,
        llm: AsyncLLM,
        metrics: RagMetrics,
        reranker: Reranker | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.llm = llm
        self.metrics = metrics
        self.retriever = Retriever(
            store, embedder.embed, reranker=reranker, rerank_depth=settings.rerank_depth
        )
        self.prompt = load_prompt(settings.prompt)
        self.docs_root = DocsRoot.at(settings.docs_root)
        self.ingest_roots = settings.resolved_ingest_roots
        self.jobs = IngestJobs(self._ingest, ttl_s=settings.ingest_job_ttl_s)
        self._collection_checked = False

    def check_collection(self) -> None:
        """Check (once) that the collection was built with this service's embedder and ids
        relative to KIT_DOCS_ROOT (`ChunkStore.check_collection`).

        Start-up runs it when Qdrant answers; when Qdrant is down the service starts anyway
        (so /readyz can say why it is not ready), and the check runs before the first search.
        Raises `StoreUnavailableError` while Qdrant is down, `ConfigError` on a mismatch.
        """
        if not self._collection_checked:
            self.store.check_collection(self.embedder.name)
            self._collection_checked = True

    def count_chunks(self) -> int:
        """The chunks in the collection, ready to search (what /readyz reports)."""
        self.check_collection()
        return self.store.count()

    async def ask(
        self, question: str, *, k: int | None = None, filters: Mapping[str, str] | None = None
    ) -> AskResult:
        started = time.perf_counter()
        hits, relevance, latency = await asyncio.to_thread(
            self._retrieve, question, k or self.settings.k, filters
        )
        retrieved = time.perf_counter()
        if not hits or relevance < self.settings.min_relevance:
            self.metrics.answers.labels("refused").inc()
            latency["total"] = round((retrieved - started) * 1000, 2)
            reason = (
                f"no source is relevant enough (best similarity {relevance:.2f} < "
                f"{self.settings.min_relevance})"
            )
            return AskResult(
                CheckedAnswer(REFUSAL, [], [], 0.0, refused=True),
                hits,
                latency,
                refusal_reason=reason,
                relevance=relevance,
            )
        messages = self.prompt.messages(question, hits)
        result = await self.llm.chat(
            messages,
            model=self.settings.model,
            max_tokens=self.settings.max_tokens,
            temperature=0.0,
        )
        generated = time.perf_counter()
        checked = check(result.text, hits)
        self.metrics.stage.labels("generate").observe(generated - retrieved)
        self.metrics.answers.labels("refused" if checked.refused else "answered").inc()
        self.metrics.citations.observe(len(checked.citations))
        self.metrics.invalid_citations.inc(len(checked.invalid_citations))
        latency |= {
            "generate": round((generated - retrieved) * 1000, 2),
            "total": round((generated - started) * 1000, 2),
        }
        log.info(
            "question_answered",
            chunks=len(hits),
            relevance=round(relevance, 3),
            citations=len(checked.citations),
            invalid=len(checked.invalid_citations),
            support=checked.support,
            refused=checked.refused,
            **latency,
        )
        return AskResult(checked, hits, latency, model=result.model, relevance=relevance)

    def _retrieve(
        self, question: str, k: int, filters: Mapping[str, str] | None
    ) -> tuple[list[Hit], float, dict[str, float]]:
        """The chunks for the prompt, the best cosine similarity (the refusal signal), and the
        milliseconds each stage took.

        Hybrid scores are fused ranks, not similarities, so relevance is read from a dense
        search: a question about something the corpus never mentions scores low there."""
        started = time.perf_counter()
        reranker = self.retriever.reranker
        depth = max(k, self.settings.rerank_depth) if reranker else k
        mode = self.settings.mode
        self.check_collection()
        with self.store.outages_reported():  # the retriever calls Qdrant's client directly
            hits = self.retriever.first_stage(question, k=depth, mode=mode, filters=filters)
            best = self.retriever.first_stage(question, k=1, mode="dense", filters=filters)
        retrieved = time.perf_counter()
        self.metrics.stage.labels("retrieve").observe(retrieved - started)
        latency = {"retrieve": round((retrieved - started) * 1000, 2)}
        relevance = best[0].score if best else 0.0
        if reranker is not None and hits and relevance >= self.settings.min_relevance:
            hits = reranker.rerank(question, hits, k)
            reranked = time.perf_counter()
            self.metrics.stage.labels("rerank").observe(reranked - retrieved)
            latency["rerank"] = round((reranked - retrieved) * 1000, 2)
        return hits[:k], relevance, latency

    def _ingest(self, paths: list[Path], prune: bool) -> dict[str, Any]:
        """One /ingest job, run by the jobs' worker thread (paths already checked by the route)."""
        options = IngestOptions(prune=prune)
        report = ingest(paths, self.store, self.embedder, options, root=self.docs_root.path)
        return report.as_dict()
