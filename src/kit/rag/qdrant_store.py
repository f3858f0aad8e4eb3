"""The chunk store on Qdrant: one collection with a dense vector and a BM25 sparse vector per chunk.

    point id = chunk id (a content hash)    vectors: "dense" (384-d, cosine), "bm25" (sparse, IDF)
    payload  = doc_id, chunk_index, text, title, heading_path, source, path, meta{...}
    metadata = {"embedder": "all-minilm-l6-v2", "doc_ids": "relative-to-KIT_DOCS_ROOT"}

Qdrant runs embedded under KIT_DATA_DIR/qdrant by default (local mode: exact search, one process
at a time), or is the server at QDRANT_URL: same code, same results. This module owns the
Qdrant client and every query made with it: nothing else in ingestion, retrieval or drift creates
one or calls it. It also turns the client's network errors into a `StoreUnavailableError` that
says where Qdrant was expected and how to fix it. What a store must do is `QdrantStore`
(store.py); Postgres with pgvector is the other one (pgvector_store.py).

    with QdrantStore.open(settings) as store:       # RAG_COLLECTION, local mode or QDRANT_URL
        store.search(vector=..., terms=..., k=5)    # dense, keyword, or both fused by RRF
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from kit.core.settings import KitSettings
from kit.rag import sparse
from kit.rag.chunk import Chunk
from kit.rag.store import (
    DOC_IDS,
    RRF_K,
    TOP_LEVEL_FILTERS,
    Hit,
    StoreUnavailableError,
    Terms,
    built_before_doc_ids,
    dimension_mismatch,
    embedder_mismatch,
)

DENSE, SPARSE = "dense", "bm25"
P = ParamSpec("P")
R = TypeVar("R")


def open_client(settings: KitSettings) -> QdrantClient:
    if settings.qdrant_url is not None:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        # A bounded timeout: a Qdrant that accepts connections but never answers must turn
        # into a clear error, not a request that hangs (qdrant-client does not retry on its own).
        return QdrantClient(
            url=str(settings.qdrant_url), api_key=key, timeout=settings.qdrant_timeout_s
        )
    path = settings.data_dir / "qdrant"
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


@contextmanager
def outages_reported(client: QdrantClient) -> Iterator[None]:
    """Raise qdrant-client's network errors as a `StoreUnavailableError` that says what to do.

    qdrant-client wraps every transport failure (refused, reset, timed out) in a
    `ResponseHandlingException`; a 502/503/504 comes from a proxy or load balancer whose Qdrant
    is down. Any other error (a bad request, a missing collection) is a bug or a configuration
    problem, and passes through unchanged.
    """
    try:
        yield
    except ResponseHandlingException as exc:
        raise StoreUnavailableError(_unreachable(client, _reason(client, exc.source))) from exc
    except UnexpectedResponse as exc:
        if exc.status_code not in (502, 503, 504):
            raise
        reason = f"it answered {exc.status_code} {exc.reason_phrase}"
        raise StoreUnavailableError(_unreachable(client, reason)) from exc


def _reason(client: QdrantClient, source: Exception) -> str:
    if isinstance(source, httpx.TimeoutException):
        timeout = client.init_options.get("timeout")
        return f"no answer within {timeout}s (KIT_QDRANT_TIMEOUT_S)"
    return f"{type(source).__name__}: {source}"


def _unreachable(client: QdrantClient, reason: str) -> str:
    where = client.init_options.get("url") or client.init_options.get("host") or "QDRANT_URL"
    return (
        f"Qdrant is unreachable at {where} ({reason}). Start it (`docker compose up -d qdrant`) "
        "or fix QDRANT_URL, then retry; `kit doctor` checks the connection. Without QDRANT_URL "
        "the kit uses an embedded Qdrant under KIT_DATA_DIR/qdrant instead."
    )


def _reports_outages(
    method: Callable[Concatenate[QdrantStore, P], R],
) -> Callable[Concatenate[QdrantStore, P], R]:
    """Decorates each `QdrantStore` method that talks to Qdrant (see `outages_reported`)."""

    @functools.wraps(method)
    def wrapper(self: QdrantStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with outages_reported(self.client):
            return method(self, *args, **kwargs)

    return wrapper


def to_filter(filters: Mapping[str, str] | None) -> models.Filter | None:
    """{"category": "tutorial"} -> payload condition meta.category == "tutorial"."""
    if not filters:
        return None
    return models.Filter(
        must=[
            models.FieldCondition(
                key=key if key in TOP_LEVEL_FILTERS else f"meta.{key}",
                match=models.MatchValue(value=value),
            )
            for key, value in filters.items()
        ]
    )


class QdrantStore:
    """`ChunkStore` on Qdrant; each operation raises `StoreUnavailableError` when it is down.

    `client` is any QdrantClient: local mode, a server, or a test's wrapper that fails on cue.
    Use it as a context manager (`with QdrantStore.open(settings) as store:`) so the client is
    closed however the block ends; local mode holds a lock on its folder until then.
    """

    def __init__(self, client: QdrantClient, collection: str) -> None:
        self.client = client
        self.collection = collection

    @classmethod
    def open(cls, settings: KitSettings, collection: str | None = None) -> QdrantStore:
        """The store the settings name: QDRANT_URL or local mode, and RAG_COLLECTION."""
        return cls(open_client(settings), collection or settings.collection)

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @_reports_outages
    def ensure_collection(
        self, dimension: int, *, embedder: str, index_fields: Sequence[str] = ()
    ) -> None:
        """Create the collection if missing, recording which embedder fills it; refuse to add
        vectors from another embedder to an existing one."""
        if self.client.collection_exists(self.collection):
            self.check_embedder(embedder)
            self._check_ids(mark_if_empty=True)
            info = self.client.get_collection(self.collection)
            vectors = info.config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) else None
            if size != dimension:
                raise dimension_mismatch(self.collection, size, dimension)
            return
        self.client.create_collection(
            self.collection,
            vectors_config={
                DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={"embedder": embedder, "doc_ids": DOC_IDS},
        )
        if not self._local:  # local mode scans payloads; a server uses indexes for filters
            for name in ("doc_id", "source", "path", *(f"meta.{f}" for f in index_fields)):
                self.client.create_payload_index(
                    self.collection, name, models.PayloadSchemaType.KEYWORD
                )

    @_reports_outages
    def embedder(self) -> str | None:
        """The embedder the collection was built with (None: missing, or built before the
        kit recorded it)."""
        name = self._metadata().get("embedder")
        return str(name) if name else None

    def _metadata(self) -> dict[str, Any]:
        if not self.client.collection_exists(self.collection):
            return {}
        return dict(self.client.get_collection(self.collection).config.metadata or {})

    @_reports_outages
    def check_collection(self, embedder: str) -> None:
        """What every reader checks before searching: the embedder matches, and the ids are
        relative to KIT_DOCS_ROOT (raises `ConfigError` with the fix otherwise)."""
        self.check_embedder(embedder)
        self._check_ids()

    def _check_ids(self, *, mark_if_empty: bool = False) -> None:
        """Refuse a collection built before ids were relative to KIT_DOCS_ROOT. An empty one
        holds no old ids: ingestion marks it and carries on."""
        if not self.client.collection_exists(self.collection):
            return
        if self._metadata().get("doc_ids") == DOC_IDS:
            return
        if self.client.count(self.collection, exact=True).count == 0:
            if mark_if_empty:
                self.client.update_collection(self.collection, metadata={"doc_ids": DOC_IDS})
            return
        raise built_before_doc_ids(self.collection)

    @_reports_outages
    def check_embedder(self, embedder: str) -> None:
        """Refuse to search or fill the collection with vectors from another model."""
        built_with = self.embedder()
        if built_with is not None and built_with != embedder:
            raise embedder_mismatch(self.collection, built_with, embedder)

    @property
    def _local(self) -> bool:
        return type(self.client._client).__name__ == "QdrantLocal"

    @_reports_outages
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

    @_reports_outages
    def paths_by_doc(self) -> dict[str, str]:
        """Each stored document's file, relative to KIT_DOCS_ROOT: what `--prune` compares with
        the folders it was given ("" for a document stored without one: never pruned)."""
        paths: dict[str, str] = {}
        offset = None
        while self.client.collection_exists(self.collection):
            points, offset = self.client.scroll(
                self.collection,
                limit=1024,
                offset=offset,
                with_payload=["doc_id", "path"],
                with_vectors=False,
            )
            for point in points:
                payload = point.payload or {}
                paths[str(payload["doc_id"])] = str(payload.get("path") or "")
            if offset is None:
                break
        return paths

    @_reports_outages
    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        sparse_vectors: Sequence[Terms] | None = None,
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
                        "path": chunk.path,
                        "meta": dict(chunk.metadata),
                    },
                )
            )
        self.client.upsert(self.collection, points=points, wait=True)

    @_reports_outages
    def delete(self, chunk_ids: Iterable[str]) -> None:
        ids: list[Any] = list(chunk_ids)
        if ids:
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=ids))

    @_reports_outages
    def drop(self) -> None:
        """Delete the whole collection (`kit ingest --rebuild`); the next ingest recreates it."""
        if self.client.collection_exists(self.collection):
            self.client.delete_collection(self.collection)

    @_reports_outages
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

        One of them: a dense search (score: cosine similarity) or a keyword one (score: BM25).
        Both: hybrid, the top `candidates` of each list fused by reciprocal rank fusion (RRF:
        score = sum over lists of 1 / (rank + RRF_K)), computed by Qdrant itself."""
        condition = to_filter(filters)
        if vector is not None and terms is not None:
            response = self.client.query_points(
                self.collection,
                prefetch=[
                    models.Prefetch(
                        query=list(vector), using=DENSE, filter=condition, limit=candidates
                    ),
                    models.Prefetch(
                        query=_sparse(terms), using=SPARSE, filter=condition, limit=candidates
                    ),
                ],
                query=models.RrfQuery(rrf=models.Rrf(k=RRF_K)),  # the constant named, not defaulted
                limit=k,
                with_payload=True,
            )
        elif vector is not None:
            response = self.client.query_points(
                self.collection,
                query=list(vector),
                using=DENSE,
                query_filter=condition,
                limit=k,
                with_payload=True,
            )
        elif terms is not None:
            response = self.client.query_points(
                self.collection,
                query=_sparse(terms),
                using=SPARSE,
                query_filter=condition,
                limit=k,
                with_payload=True,
            )
        else:
            raise ValueError("search needs a dense vector, BM25 terms, or both")
        return [_hit(point) for point in response.points]

    @_reports_outages
    def nearest(self, vectors: npt.NDArray[np.float32], batch: int = 64) -> list[Hit | None]:
        """The closest chunk (by cosine) to each row of `vectors`, None where there is none;
        asked in batches of `batch` queries per round trip."""
        found: list[Hit | None] = []
        for start in range(0, len(vectors), batch):
            requests = [
                models.QueryRequest(query=row.tolist(), using=DENSE, limit=1, with_payload=True)
                for row in vectors[start : start + batch]
            ]
            for response in self.client.query_batch_points(self.collection, requests):
                found.append(_hit(response.points[0]) if response.points else None)
        return found

    @_reports_outages
    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection, exact=True).count

    def close(self) -> None:
        self.client.close()


def _sparse(terms: Terms) -> models.SparseVector:
    indices, values = terms
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
