"""Retrieval over the chunk store: dense, keyword (BM25) or hybrid, with metadata filters, and the
optional rerank stage. Used by the RAG service, `kit search` and the evaluation harness alike.

    hybrid (default): the top candidates of dense and of keyword search, fused by reciprocal
    rank fusion (RRF), computed by the store itself (ChunkStore.search: Qdrant or Postgres).

RRF needs no score calibration between the two lists (cosine similarities and BM25 scores live
on different scales), which is why it is the usual default for hybrid search. With a reranker
(rerank.py), the first stage returns `rerank_depth` candidates and the reranker picks the best
k. The query is embedded once, whatever is asked of it: the first stage, the relevance check and
the rerank all reuse that vector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from opentelemetry.util.types import AttributeValue

from kit.core.tracing import GenAI, record_content, tracer
from kit.rag import sparse
from kit.rag.store import ChunkStore, Hit

if TYPE_CHECKING:
    from kit.rag.rerank import Reranker

__all__ = ["Hit", "Mode", "Retrieved", "Retriever"]

Mode = Literal["hybrid", "dense", "keyword"]
EmbedQuery = Callable[[list[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class Retrieved:
    """The chunks for a question, how relevant the best of them is, and where time went."""

    hits: list[Hit]
    relevance: float | None  # the best dense cosine similarity, when asked for (else None)
    milliseconds: dict[str, float] = field(default_factory=dict)  # retrieve, rerank


class Retriever:
    def __init__(
        self,
        store: ChunkStore,
        embed: EmbedQuery,
        candidates: int = 40,
        reranker: Reranker | None = None,
        rerank_depth: int = 20,
        embed_model: str = "query-embedder",
    ) -> None:
        self.store = store
        self.embed = embed
        self.embed_model = embed_model  # how traces name the embedder
        self.candidates = candidates  # from each list, before fusion
        self.reranker = reranker
        self.rerank_depth = rerank_depth  # first-stage hits the reranker rescores

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        mode: Mode = "hybrid",
        filters: Mapping[str, str] | None = None,
        rerank: bool = True,
    ) -> list[Hit]:
        """The best k chunks; reranked when a reranker is set and `rerank` is true."""
        return self.retrieve(query, k=k, mode=mode, filters=filters, rerank=rerank).hits

    def retrieve(
        self,
        query: str,
        *,
        k: int,
        mode: Mode = "hybrid",
        filters: Mapping[str, str] | None = None,
        rerank: bool = True,
        relevance_floor: float | None = None,
    ) -> Retrieved:
        """The best k chunks, with timings; with `relevance_floor`, also the best dense cosine
        similarity of any chunk, the signal a RAG answer is refused on.

        Hybrid and keyword scores are fused ranks and BM25 weights, not similarities, so the
        relevance comes from a dense search (with the same vector: no second embedding). Below
        the floor the question will be refused, so the reranker's cost is not paid."""
        span_attributes: dict[str, AttributeValue] = {
            GenAI.OPERATION: "retrieval",
            GenAI.DATA_SOURCE: self.store.collection,
            "kit.retrieval.mode": mode,
            "kit.retrieval.k": k,
        }
        with tracer().start_as_current_span(
            f"retrieval {self.store.collection}", attributes=span_attributes
        ) as span:
            record_content(span, GenAI.RETRIEVAL_QUERY, query)
            retrieved = self._retrieve(query, k, mode, filters, rerank, relevance_floor)
            span.set_attribute("kit.retrieval.chunk_ids", [hit.chunk_id for hit in retrieved.hits])
            span.set_attribute("kit.retrieval.scores", [hit.score for hit in retrieved.hits])
            if retrieved.relevance is not None:
                span.set_attribute("kit.retrieval.relevance", retrieved.relevance)
            record_content(
                span,
                GenAI.RETRIEVAL_DOCUMENTS,
                [{"id": h.chunk_id, "score": h.score, "content": h.text} for h in retrieved.hits],
            )
            return retrieved

    def _retrieve(
        self,
        query: str,
        k: int,
        mode: Mode,
        filters: Mapping[str, str] | None,
        rerank: bool,
        relevance_floor: float | None,
    ) -> Retrieved:
        started = time.perf_counter()
        depth = max(k, self.rerank_depth) if self.reranker is not None and rerank else k
        wants_vector = mode != "keyword" or relevance_floor is not None
        vector = self._embed_query(query) if wants_vector else None
        terms = sparse.query_vector(query) if mode != "dense" else None
        hits = self.store.search(
            vector=vector if mode != "keyword" else None,
            terms=terms,
            k=depth,
            filters=filters,
            candidates=self.candidates,
        )
        relevance: float | None = None
        if relevance_floor is not None:
            if mode == "dense":  # the first stage's best score is that similarity already
                relevance = hits[0].score if hits else 0.0
            else:
                best = self.store.search(vector=vector, k=1, filters=filters)
                relevance = best[0].score if best else 0.0
        retrieved = time.perf_counter()
        milliseconds = {"retrieve": round((retrieved - started) * 1000, 2)}
        relevant = relevance is None or relevance_floor is None or relevance >= relevance_floor
        if self.reranker is not None and rerank and hits and relevant:
            with tracer().start_as_current_span(
                "rerank", attributes={"kit.rerank.candidates": len(hits), "kit.retrieval.k": k}
            ):
                hits = self.reranker.rerank(query, hits, k)
            milliseconds["rerank"] = round((time.perf_counter() - retrieved) * 1000, 2)
        return Retrieved(hits[:k], relevance, milliseconds)

    def _embed_query(self, query: str) -> list[float]:
        attributes = {GenAI.OPERATION: "embeddings", GenAI.REQUEST_MODEL: self.embed_model}
        with tracer().start_as_current_span(
            f"embeddings {self.embed_model}", attributes=attributes
        ):
            vector: list[float] = self.embed([query])[0].tolist()
        return vector
