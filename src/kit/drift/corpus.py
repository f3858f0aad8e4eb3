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

from kit.core.errors import ConfigError
from kit.rag.store import ChunkStore

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
    best = store.nearest(vectors, batch=BATCH)
    similarity = [hit.score if hit else 0.0 for hit in best]
    doc_ids = [hit.doc_id if hit else "" for hit in best]
    return Nearest(np.asarray(similarity, dtype=np.float64), doc_ids)
