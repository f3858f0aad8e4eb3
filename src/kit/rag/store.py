"""The chunk store: what ingestion, retrieval, drift and the RAG service need from a vector
database, and the two databases that provide it.

    ChunkStore (this protocol)
      ├── QdrantStore    src/kit/rag/qdrant_store.py    KIT_STORE=qdrant (default): embedded
      │                                                 under KIT_DATA_DIR/qdrant, or QDRANT_URL
      └── PgvectorStore  src/kit/rag/pgvector_store.py  KIT_STORE=pgvector: Postgres at
                                                        DATABASE_URL, or one the kit starts

Both hold the same thing per chunk (its content-hash id, its document, text, title, headings,
source path and metadata; a 384-d dense vector; BM25 term weights) and answer the same searches
with the same scores: cosine similarity for dense, BM25 with the collection's IDF for keyword,
and reciprocal rank fusion of the two for hybrid. `tests/integration/test_store_congruence.py`
runs one corpus and one question set through both and compares the results.

    with open_store(settings) as store:               # KIT_STORE, RAG_COLLECTION
        store.search(vector=..., terms=..., k=5)      # dense, keyword, or both fused by RRF

Ids and sources are relative to KIT_DOCS_ROOT (src/kit/rag/paths.py): no server path is stored,
so none can reach a client in a citation. A collection built by an earlier kit, whose ids were
relative to whichever folder was named, lacks the `DOC_IDS` mark: `check_collection` refuses it
with the fix (`kit ingest --rebuild`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt

from kit.core.errors import ConfigError, KitError
from kit.core.settings import KitSettings
from kit.rag.chunk import Chunk

DOC_IDS = "relative-to-KIT_DOCS_ROOT"  # the id scheme, recorded in the collection's metadata
TOP_LEVEL_FILTERS = frozenset({"doc_id", "source", "title"})  # filter keys outside `meta`

# Reciprocal rank fusion: a chunk's hybrid score is the sum, over the dense and the keyword
# list, of 1 / (rank + RRF_K), rank counted from 0: the first of a list adds 1/2. Qdrant's
# default constant is 2; both stores name it, so they rank hybrid results alike.
RRF_K = 2

Terms = tuple[list[int], list[float]]  # BM25 terms (sparse.py): (hashed term ids, weights)


class StoreUnavailableError(KitError):
    """The store did not answer: connection refused or reset, no answer in time, or a proxy in
    front of it said it is down. The RAG service answers 503; `kit ingest` exits 1."""

    type = "store_unavailable"


@dataclass(frozen=True)
class Hit:
    """One chunk found by a search, with its score (cosine, BM25 or fused rank: see `search`)."""

    chunk_id: str
    doc_id: str
    score: float
    text: str
    title: str
    heading_path: tuple[str, ...]
    source: str
    meta: dict[str, Any]


class ChunkStore(Protocol):
    """The operations every store provides; each raises `StoreUnavailableError` when its
    database is down. Use one as a context manager so its connections are closed however the
    block ends (Qdrant's local mode holds a lock on its folder until then)."""

    collection: str

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def close(self) -> None: ...

    def ensure_collection(
        self, dimension: int, *, embedder: str, index_fields: Sequence[str] = ()
    ) -> None:
        """Create the collection if missing, recording which embedder fills it; refuse to add
        vectors from another embedder, or of another size, to an existing one."""
        ...

    def embedder(self) -> str | None:
        """The embedder the collection was built with (None: no collection yet)."""
        ...

    def check_embedder(self, embedder: str) -> None:
        """Refuse (`ConfigError`) to search or fill the collection with another model's vectors."""
        ...

    def check_collection(self, embedder: str) -> None:
        """What every reader checks before searching: the embedder matches, and the ids are
        relative to KIT_DOCS_ROOT (raises `ConfigError` with the fix otherwise)."""
        ...

    def chunk_ids_by_doc(self) -> dict[str, set[str]]:
        """Every stored chunk id, grouped by document: what re-ingestion compares against."""
        ...

    def paths_by_doc(self) -> dict[str, str]:
        """Each stored document's file, relative to KIT_DOCS_ROOT ("" when stored without one)."""
        ...

    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        sparse_vectors: Sequence[Terms] | None = None,
    ) -> None:
        """Store chunks with their dense vectors; BM25 weights are computed unless given."""
        ...

    def delete(self, chunk_ids: Iterable[str]) -> None: ...

    def drop(self) -> None:
        """Delete the whole collection (`kit ingest --rebuild`); the next ingest recreates it."""
        ...

    def search(
        self,
        *,
        vector: Sequence[float] | None = None,
        terms: Terms | None = None,
        k: int,
        filters: Mapping[str, str] | None = None,
        candidates: int = 40,
    ) -> list[Hit]:
        """The best k chunks for a dense `vector`, BM25 `terms` (sparse.query_vector), or both.

        One of them: a dense search (score: cosine similarity) or a keyword one (score: BM25,
        the sum over matched terms of weight x IDF). Both: hybrid, the top `candidates` of each
        list fused by RRF (score: the sum of 1 / (rank + RRF_K)). `filters` match metadata
        exactly: {"category": "tutorial"}, or the top-level doc_id, source and title."""
        ...

    def nearest(self, vectors: npt.NDArray[np.float32], batch: int = 64) -> list[Hit | None]:
        """The closest chunk (by cosine) to each row of `vectors`, None where there is none."""
        ...

    def count(self) -> int: ...


def open_store(settings: KitSettings, collection: str | None = None) -> ChunkStore:
    """The store the settings name (KIT_STORE), on the collection RAG_COLLECTION names."""
    name = collection or settings.collection
    if settings.store == "pgvector":
        from kit.rag.pgvector_store import PgvectorStore  # psycopg loads only when chosen

        return PgvectorStore.open(settings, name)
    from kit.rag.qdrant_store import QdrantStore

    return QdrantStore.open(settings, name)


def embedder_mismatch(collection: str, built_with: str, embedder: str) -> ConfigError:
    return ConfigError(
        f"Collection {collection!r} was built with the embedder {built_with!r}, and "
        f"KIT_EMBEDDER gives {embedder!r}: vectors of different models cannot be compared. "
        "Set KIT_EMBEDDER to match it, or ingest into another collection."
    )


def dimension_mismatch(collection: str, size: int | None, dimension: int) -> ConfigError:
    return ConfigError(
        f"Collection {collection!r} holds {size}-d vectors, the embedder makes {dimension}-d "
        "ones. Ingest into another collection (--collection), or delete this one to rebuild it."
    )


def built_before_doc_ids(collection: str) -> ConfigError:
    return ConfigError(
        f"Collection {collection!r} was built by an earlier version of the kit: its document "
        "ids are relative to the folder that was ingested, not to KIT_DOCS_ROOT, and its "
        "sources are server paths. Ingesting into it would store every document a second time "
        "under its new id, so it is refused. Rebuild it from your documents with "
        "`kit ingest --rebuild PATH...` (stop the RAG service first when Qdrant runs "
        "embedded), or ingest into a new collection with --collection."
    )
