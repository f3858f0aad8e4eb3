"""How close each question is to the indexed documents: its best cosine similarity to any chunk.

The same number the RAG service refuses on (RAG_MIN_RELEVANCE), computed for both windows
against the collection as it is now, so the reference and the current questions are measured on
one scale. Questions arrive already embedded; this module only searches (Qdrant, one batch
request per 256 questions, through the chunk store's client).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from qdrant_client import models

from pipelines.ingest.index import DENSE, ChunkStore
from services.common.errors import ConfigError

BATCH = 256


@dataclass(frozen=True)
class Nearest:
    similarity: npt.NDArray[np.float64]  # (n,) best cosine similarity of each question
    doc_id: list[str]  # the document of that best chunk ("" when the collection is empty)


def require_corpus(store: ChunkStore) -> None:
    """Fail early, with the fix, when there is no collection to measure against."""
    if not store.count():
        raise ConfigError(
            f"Collection {store.collection!r} is empty or missing, so closeness to the corpus "
            "cannot be measured. Run `kit ingest data/fastapi-docs/docs` (or your documents) "
            "first, or name the collection the RAG service uses with --collection."
        )


def nearest_chunks(store: ChunkStore, vectors: npt.NDArray[np.float32]) -> Nearest:
    """The best chunk of the collection for each row of `vectors` (n, dim), unit length."""
    require_corpus(store)
    similarity: list[float] = []
    doc_ids: list[str] = []
    for start in range(0, len(vectors), BATCH):
        requests = [
            models.QueryRequest(query=row.tolist(), using=DENSE, limit=1, with_payload=["doc_id"])
            for row in vectors[start : start + BATCH]
        ]
        for response in store.client.query_batch_points(store.collection, requests):
            best = response.points[0] if response.points else None
            similarity.append(float(best.score) if best else 0.0)
            doc_ids.append(str((best.payload or {}).get("doc_id", "")) if best else "")
    return Nearest(np.asarray(similarity, dtype=np.float64), doc_ids)
