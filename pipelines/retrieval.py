"""Retrieval over the chunk store: dense, keyword (BM25) or hybrid, with metadata filters.

    hybrid (default): the top candidates of dense and of keyword search, fused by reciprocal
    rank fusion (RRF: score = sum over lists of 1 / (60 + rank)), computed by Qdrant itself.

RRF needs no score calibration between the two lists (cosine similarities and BM25 scores live
on different scales), which is why it is the usual default for hybrid search. With a reranker
(pipelines/rerank.py), the first stage returns `rerank_depth` candidates and the reranker picks
the best k. Used by the RAG service, `kit search` and the evaluation harness alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from qdrant_client import models

from pipelines.ingest import sparse
from pipelines.ingest.index import DENSE, SPARSE, ChunkStore

if TYPE_CHECKING:
    from pipelines.rerank import Reranker

Mode = Literal["hybrid", "dense", "keyword"]
EmbedQuery = Callable[[list[str]], npt.NDArray[np.float32]]
_TOP_LEVEL = frozenset({"doc_id", "source", "title"})


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    score: float
    text: str
    title: str
    heading_path: tuple[str, ...]
    source: str
    meta: dict[str, Any]


def to_filter(filters: Mapping[str, str] | None) -> models.Filter | None:
    """{"category": "tutorial"} -> payload condition meta.category == "tutorial"."""
    if not filters:
        return None
    return models.Filter(
        must=[
            models.FieldCondition(
                key=key if key in _TOP_LEVEL else f"meta.{key}",
                match=models.MatchValue(value=value),
            )
            for key, value in filters.items()
        ]
    )


class Retriever:
    def __init__(
        self,
        store: ChunkStore,
        embed: EmbedQuery,
        candidates: int = 40,
        reranker: Reranker | None = None,
        rerank_depth: int = 20,
    ) -> None:
        self.store = store
        self.embed = embed
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
        if self.reranker is None or not rerank:
            return self.first_stage(query, k=k, mode=mode, filters=filters)
        candidates = self.first_stage(
            query, k=max(k, self.rerank_depth), mode=mode, filters=filters
        )
        return self.reranker.rerank(query, candidates, k)

    def first_stage(
        self,
        query: str,
        *,
        k: int,
        mode: Mode = "hybrid",
        filters: Mapping[str, str] | None = None,
    ) -> list[Hit]:
        condition = to_filter(filters)
        client, collection = self.store.client, self.store.collection
        if mode in ("dense", "keyword"):
            vector = self._dense(query) if mode == "dense" else self._sparse(query)
            response = client.query_points(
                collection,
                query=vector,
                using=DENSE if mode == "dense" else SPARSE,
                query_filter=condition,
                limit=k,
                with_payload=True,
            )
        else:
            response = client.query_points(
                collection,
                prefetch=[
                    models.Prefetch(
                        query=self._dense(query),
                        using=DENSE,
                        filter=condition,
                        limit=self.candidates,
                    ),
                    models.Prefetch(
                        query=self._sparse(query),
                        using=SPARSE,
                        filter=condition,
                        limit=self.candidates,
                    ),
                ],
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=k,
                with_payload=True,
            )
        return [_hit(point) for point in response.points]

    def _dense(self, query: str) -> list[float]:
        vector: list[float] = self.embed([query])[0].tolist()
        return vector

    @staticmethod
    def _sparse(query: str) -> models.SparseVector:
        indices, values = sparse.query_vector(query)
        return models.SparseVector(indices=indices, values=values)


def _hit(point: models.ScoredPoint) -> Hit:
    payload = point.payload or {}
    return Hit(
        chunk_id=str(point.id),
        doc_id=str(payload.get("doc_id", "")),
        score=float(point.score),
        text=str(payload.get("text", "")),
        title=str(payload.get("title", "")),
        heading_path=tuple(payload.get("heading_path", ())),
        source=str(payload.get("source", "")),
        meta=dict(payload.get("meta", {})),
    )
