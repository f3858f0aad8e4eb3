"""The chunk store: one Qdrant collection with a dense vector and a BM25 sparse vector per chunk.

    point id = chunk id (a content hash)    vectors: "dense" (384-d, cosine), "bm25" (sparse, IDF)
    payload  = doc_id, chunk_index, text, title, heading_path, source, meta{...}

Qdrant runs embedded under KIT_DATA_DIR/qdrant by default (local mode: exact search, one process
at a time), or is the server at QDRANT_URL: same code, same results. This module owns the
Qdrant client; nothing else in ingestion or retrieval creates one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient, models

from pipelines.ingest import sparse
from pipelines.ingest.chunk import Chunk
from services.common.errors import ConfigError
from services.common.settings import KitSettings

DEFAULT_COLLECTION = "docs"
DENSE, SPARSE = "dense", "bm25"


def open_client(settings: KitSettings) -> QdrantClient:
    if settings.qdrant_url is not None:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantClient(url=str(settings.qdrant_url), api_key=key, timeout=30)
    path = settings.data_dir / "qdrant"
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


class ChunkStore:
    def __init__(self, client: QdrantClient, collection: str = DEFAULT_COLLECTION) -> None:
        self.client = client
        self.collection = collection

    def ensure_collection(
        self, dimension: int, *, embedder: str, index_fields: Sequence[str] = ()
    ) -> None:
        """Create the collection if missing, recording which embedder fills it; refuse to add
        vectors from another embedder to an existing one."""
        if self.client.collection_exists(self.collection):
            self.check_embedder(embedder)
            info = self.client.get_collection(self.collection)
            vectors = info.config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) else None
            if size != dimension:
                raise ConfigError(
                    f"Collection {self.collection!r} holds {size}-d vectors, the embedder makes "
                    f"{dimension}-d ones. Ingest into another collection (--collection), or "
                    "delete this one to rebuild it."
                )
            return
        self.client.create_collection(
            self.collection,
            vectors_config={
                DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={"embedder": embedder},
        )
        if not self._local:  # local mode scans payloads; a server uses indexes for filters
            for name in ("doc_id", "source", *(f"meta.{field}" for field in index_fields)):
                self.client.create_payload_index(
                    self.collection, name, models.PayloadSchemaType.KEYWORD
                )

    def embedder(self) -> str | None:
        """The embedder the collection was built with (None: missing, or built before the
        kit recorded it)."""
        if not self.client.collection_exists(self.collection):
            return None
        metadata = self.client.get_collection(self.collection).config.metadata or {}
        name = metadata.get("embedder")
        return str(name) if name else None

    def check_embedder(self, embedder: str) -> None:
        """Refuse to search or fill the collection with vectors from another model."""
        built_with = self.embedder()
        if built_with is not None and built_with != embedder:
            raise ConfigError(
                f"Collection {self.collection!r} was built with the embedder {built_with!r}, "
                f"and KIT_EMBEDDER gives {embedder!r}: vectors of different models cannot be "
                f"compared. Set KIT_EMBEDDER to match it, or ingest into another collection."
            )

    @property
    def _local(self) -> bool:
        return type(self.client._client).__name__ == "QdrantLocal"

    def chunk_ids_by_doc(self) -> dict[str, set[str]]:
        """Every stored chunk id, grouped by document: what re-ingestion compares against."""
        found: dict[str, set[str]] = defaultdict(set)
        if not self.client.collection_exists(self.collection):
            return found
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                limit=1024,
                offset=offset,
                with_payload=["doc_id"],
                with_vectors=False,
            )
            for point in points:
                found[str((point.payload or {})["doc_id"])].add(str(point.id))
            if offset is None:
                return found

    def sources_by_doc(self) -> dict[str, str]:
        sources: dict[str, str] = {}
        offset = None
        while self.client.collection_exists(self.collection):
            points, offset = self.client.scroll(
                self.collection,
                limit=1024,
                offset=offset,
                with_payload=["doc_id", "source"],
                with_vectors=False,
            )
            for point in points:
                payload = point.payload or {}
                sources[str(payload["doc_id"])] = str(payload["source"])
            if offset is None:
                break
        return sources

    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        sparse_vectors: Sequence[tuple[list[int], list[float]]] | None = None,
    ) -> None:
        """Store chunks with their dense vectors; BM25 vectors are computed unless given
        (a re-index, or a benchmark copying chunks, already has them)."""
        if sparse_vectors is None:
            sparse_vectors = [sparse.document_vector(c.embedding_text()) for c in chunks]
        points = []
        for chunk, vector, (indices, values) in zip(chunks, vectors, sparse_vectors, strict=True):
            points.append(
                models.PointStruct(
                    id=chunk.id,
                    vector={
                        DENSE: vector.tolist(),
                        SPARSE: models.SparseVector(indices=indices, values=values),
                    },
                    payload={
                        "doc_id": chunk.doc_id,
                        "chunk_index": chunk.index,
                        "text": chunk.text,
                        "title": chunk.title,
                        "heading_path": list(chunk.heading_path),
                        "source": chunk.source,
                        "meta": dict(chunk.metadata),
                    },
                )
            )
        self.client.upsert(self.collection, points=points, wait=True)

    def delete(self, chunk_ids: Iterable[str]) -> None:
        ids: list[Any] = list(chunk_ids)
        if ids:
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=ids))

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection, exact=True).count

    def close(self) -> None:
        self.client.close()
