"""One question answered: retrieve, refuse if nothing is relevant, prompt, generate, check.

Also owns the ingestion jobs of `POST /ingest` (jobs.py: one at a time, expiring), run below
KIT_DOCS_ROOT. The model is reached only through the chat port; retrieval and ingestion only
through `kit.rag`. Who may call is the routes' business (deps.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from kit.core.logging import get_logger
from kit.core.ports import ChatMessage, ChatModel, ChatResult, Embedder
from kit.core.tracing import GenAI, input_messages, output_messages, record_content, tracer
from kit.rag.answer import REFUSAL, CheckedAnswer, PromptChoice, check, choose_prompt
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.paths import DocsRoot
from kit.rag.rerank import Reranker
from kit.rag.retrieval import Hit, Retriever
from kit.rag.store import ChunkStore
from kit.rag_service.jobs import IngestJobs
from kit.rag_service.metrics import RagMetrics
from kit.rag_service.settings import RagSettings

log = get_logger("rag")


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
        llm: ChatModel,
        metrics: RagMetrics,
        reranker: Reranker | None = None,
        *,
        prompt: PromptChoice | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.llm = llm
        self.metrics = metrics
        self.retriever = Retriever(
            store,
            embedder.embed,
            reranker=reranker,
            rerank_depth=settings.rerank_depth,
            embed_model=embedder.name,
        )
        chosen = prompt or choose_prompt(settings.prompt, settings)
        self.prompt = chosen.template
        # What traces record about the prompt: its name and content digest, and the registry
        # version when it came from there.
        self.prompt_attributes: dict[str, AttributeValue] = {
            GenAI.PROMPT_NAME: self.prompt.name,
            "kit.prompt.digest": self.prompt.digest,
        }
        if chosen.uri is not None and chosen.version is not None:
            self.prompt_attributes |= {
                "kit.prompt.uri": chosen.uri,
                "kit.prompt.version": chosen.version,
            }
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
        """Answer `question` from the collection; traced as one span, `rag ask`, with the
        retrieval and the model call below it (src/kit/core/tracing.py)."""
        attributes: dict[str, AttributeValue] = {
            "kit.rag.k": k or self.settings.k,
            "kit.retrieval.mode": self.settings.mode,
            **self.prompt_attributes,
        }
        with tracer().start_as_current_span("rag ask", attributes=attributes) as span:
            record_content(span, "kit.rag.question", question)
            result = await self._ask(question, k or self.settings.k, filters)
            span.set_attributes(
                {
                    "kit.rag.refused": result.answer.refused,
                    "kit.rag.relevance": result.relevance,
                    "kit.rag.citations": [c.chunk_id for c in result.answer.citations],
                    "kit.rag.invalid_citations": len(result.answer.invalid_citations),
                    "kit.rag.support": result.answer.support,
                }
            )
            if result.refusal_reason:
                span.set_attribute("kit.rag.refusal_reason", result.refusal_reason)
            record_content(span, "kit.rag.answer", result.answer.text)
            return result

    async def _ask(self, question: str, k: int, filters: Mapping[str, str] | None) -> AskResult:
        started = time.perf_counter()
        hits, relevance, latency = await asyncio.to_thread(self._retrieve, question, k, filters)
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
        result = await self._generate(self.prompt.messages(question, hits))
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

    async def _generate(self, messages: list[ChatMessage]) -> ChatResult:
        """The model call, as a GenAI `chat` span: which model answered, its tokens, and (with
        content capture on) the prompt and the answer."""
        model = self.settings.model or "default"
        attributes: dict[str, AttributeValue] = {
            GenAI.OPERATION: "chat",
            GenAI.REQUEST_MODEL: model,
            GenAI.REQUEST_MAX_TOKENS: self.settings.max_tokens,
            GenAI.REQUEST_TEMPERATURE: 0.0,
            **self.prompt_attributes,
        }
        with tracer().start_as_current_span(
            f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            record_content(span, GenAI.INPUT_MESSAGES, input_messages(messages))
            result = await self.llm.achat(
                messages,
                model=self.settings.model,
                max_tokens=self.settings.max_tokens,
                temperature=0.0,
            )
            span.set_attributes(
                {
                    GenAI.RESPONSE_MODEL: result.model,
                    GenAI.INPUT_TOKENS: result.usage.prompt_tokens,
                    GenAI.OUTPUT_TOKENS: result.usage.completion_tokens,
                    GenAI.FINISH_REASONS: [result.finish_reason],
                }
            )
            record_content(
                span, GenAI.OUTPUT_MESSAGES, output_messages(result.text, result.finish_reason)
            )
            return result

    def _retrieve(
        self, question: str, k: int, filters: Mapping[str, str] | None
    ) -> tuple[list[Hit], float, dict[str, float]]:
        """The chunks for the prompt, the best cosine similarity (the refusal signal: a question
        about something the corpus never mentions scores low), and the milliseconds each stage
        took. One embedding of the question serves all of it (kit.rag.retrieval)."""
        self.check_collection()
        retrieved = self.retriever.retrieve(
            question,
            k=k,
            mode=self.settings.mode,
            filters=filters,
            relevance_floor=self.settings.min_relevance,
        )
        for stage, milliseconds in retrieved.milliseconds.items():
            self.metrics.stage.labels(stage).observe(milliseconds / 1000)
        return retrieved.hits, retrieved.relevance or 0.0, dict(retrieved.milliseconds)

    def _ingest(self, paths: list[Path], prune: bool) -> dict[str, Any]:
        """One /ingest job, run by the jobs' worker thread (paths already checked by the route)."""
        options = IngestOptions(prune=prune)
        report = ingest(paths, self.store, self.embedder, options, root=self.docs_root.path)
        return report.as_dict()
