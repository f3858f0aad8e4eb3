"""The ingestion run as a PySpark job (`kit ingest --engine spark`): the same chunks, vectors and
report as the local engine (src/kit/rag/ingest.py), with the work spread over executors.

    driver      discover files, read the stored ids ──┐
    executors   load -> clean -> chunk (one task per file)   (the loaders and chunker of kit.rag)
    driver      plan: which chunks are new, which are stale (the local engine's rules, by id)
    executors   embed only the new chunks in a pandas UDF (the model loaded once per process)
    writes      in batches through ChunkStore: from the driver when Qdrant runs embedded (one
                process may hold its folder), from the executors when the store is a server
    driver      delete stale chunks, prune, data-quality checks in Spark SQL -> IngestReport

Executors read the files by the same path as the driver (a shared or copied KIT_DOCS_ROOT). This
module knows nothing of the CLI or of how a gateway is started: with a gateway embedder the
executors call GATEWAY_URL, which must therefore be set.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # the pandas UDF's type hints are read at run time

from kit.core.errors import ConfigError
from kit.core.ports import Embedder
from kit.core.settings import KitSettings
from kit.llm.embedders import gateway_model
from kit.rag.chunk import Chunk, chunk_document, count_tokens
from kit.rag.documents import Skipped
from kit.rag.ingest import IngestOptions, plan_document, prepare_collection, prune_missing
from kit.rag.loaders import load_file
from kit.rag.paths import DocsRoot, discover
from kit.rag.report import IngestReport
from kit.rag.store import ChunkStore, StoreUnavailableError, open_store

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

# One chunk as a Spark row. `tokens` feeds the over-long check; `embed_text` is what is embedded.
CHUNK_SCHEMA = (
    "id string, doc_id string, index int, text string, heading_path array<string>, "
    "title string, source string, metadata string, path string, embed_text string, tokens int"
)


def spark_session(master: str = "local[*]") -> SparkSession:
    """A quiet session on `master`: local[*] (every core of this machine), spark://HOST:7077 or
    k8s://https://HOST:443. Stop it when done (`session.stop()`)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName("kit-ingest")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if master.startswith("local"):
        # Local executors are Python processes on this machine: run them with this environment's
        # Python (the one with the kit installed), not whatever `python3` is first on PATH.
        # PySpark reads it from the environment when the context starts. On a cluster,
        # PYSPARK_PYTHON names the executors' Python.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # pyspark 4.3 warns on every pandas 3 it meets; the UDF here is one Series -> Series, which
    # tests/integration/test_spark_ingest.py checks against the local engine's vectors.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")  # the JVM's own lines from here on
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its per-call INFO lines
    return session


def writes_from_executors(settings: KitSettings) -> bool:
    """Whether executors may write: only to a server. Qdrant's local mode locks its folder to one
    process, and without DATABASE_URL each process would start a Postgres of its own."""
    if settings.store == "pgvector":
        return settings.database_url is not None
    return settings.qdrant_url is not None


def ingest_with_spark(
    spark: SparkSession,
    paths: Sequence[Path],
    store: ChunkStore,
    embedder: Embedder,
    options: IngestOptions,
    *,
    root: Path,
    settings: KitSettings,
) -> IngestReport:
    """What `kit.rag.ingest.ingest` does, run on `spark`. `embedder` (on the driver) gives the
    name and size the collection records; executors open their own from `settings`
    (KIT_EMBEDDER), and write through `open_store(settings, store.collection)` when
    `writes_from_executors(settings)`."""
    if gateway_model(settings.embedder) is not None and settings.gateway_url is None:
        raise ConfigError(
            f"KIT_EMBEDDER={settings.embedder} with --engine spark needs GATEWAY_URL: every "
            "executor calls the gateway, and none can start one of its own."
        )
    try:
        return _ingest(spark, paths, store, embedder, options, DocsRoot.at(root), settings)
    except StoreUnavailableError as exc:
        raise StoreUnavailableError(
            f"{exc} Ingestion stopped there: the chunks it stored are kept, and running it "
            "again embeds and stores only what is missing."
        ) from exc


def _ingest(
    spark: SparkSession,
    paths: Sequence[Path],
    store: ChunkStore,
    embedder: Embedder,
    options: IngestOptions,
    root: DocsRoot,
    settings: KitSettings,
) -> IngestReport:
    report = IngestReport(chunking=options.chunking.fingerprint())
    started = time.perf_counter()
    folders, stored = prepare_collection(paths, store, embedder, options, root)

    # The file list (root-relative names) is what is shipped; each executor reads its own files.
    files: list[str] = []
    for found in discover(paths, root):
        if isinstance(found, Skipped):
            report.skipped.append(found)
        else:
            files.append(root.id_of(found))
    loading = time.perf_counter()
    sc = spark.sparkContext
    rows = sc.parallelize(files, max(1, min(len(files), sc.defaultParallelism * 4))).flatMap(
        lambda name: _load_and_chunk(name, str(root.path), options)
    )
    rows.cache()
    skipped = rows.filter(lambda row: row[0] == "skipped").map(lambda row: row[1]).collect()
    report.skipped += [Skipped(source, reason) for source, reason in skipped]
    chunks = spark.createDataFrame(
        rows.filter(lambda row: row[0] == "chunk").map(lambda row: row[1]), CHUNK_SCHEMA
    ).cache()
    # Per document, its chunk ids in order: only ids come back to the driver, never texts.
    documents = rows.filter(lambda row: row[0] == "document").map(lambda row: row[1]).collect()
    ids_by_doc: dict[str, list[str]] = {doc_id: [] for doc_id in documents}
    for doc_id, chunk_id in chunks.select("doc_id", "id").orderBy("doc_id", "index").collect():
        ids_by_doc[doc_id].append(chunk_id)
    report.timings["load"] = time.perf_counter() - loading

    plans = [
        plan_document(ids, stored.get(doc_id, set()), report) for doc_id, ids in ids_by_doc.items()
    ]
    fresh = {chunk_id for new, _ in plans for chunk_id in new}
    embedding = time.perf_counter()
    _embed_and_write(spark, chunks, fresh, store, options.batch_size, settings)
    report.timings["embed"] = time.perf_counter() - embedding
    # Only now that the new chunks are stored do the old ones go (see ingest.py's docstring).
    store.delete(chunk_id for _, stale in plans for chunk_id in stale)

    if options.prune:
        prune_missing(folders, store, stored, set(ids_by_doc), report)
    report.quality.update(_quality(spark, chunks, options.chunking.max_tokens))
    chunks.unpersist()
    rows.unpersist()
    report.timings["total"] = time.perf_counter() - started
    report.chunks_in_collection = store.count()
    return report


def _load_and_chunk(name: str, root: str, options: IngestOptions) -> Iterator[tuple[str, Any]]:
    """On an executor: one file -> ("skipped", (source, reason)), ("document", doc_id) and
    ("chunk", row) records, by the loaders and chunker the local engine uses."""
    for item in load_file(
        Path(root) / name, Path(root), jsonl=options.jsonl, max_bytes=options.max_bytes
    ):
        if isinstance(item, Skipped):
            yield "skipped", (item.source, item.reason)
            continue
        yield "document", item.id
        for chunk in chunk_document(item, options.chunking):
            yield "chunk", _row(chunk)


def _row(chunk: Chunk) -> tuple[Any, ...]:
    return (
        chunk.id,
        chunk.doc_id,
        chunk.index,
        chunk.text,
        list(chunk.heading_path),
        chunk.title,
        chunk.source,
        json.dumps(chunk.metadata),
        chunk.path,
        chunk.embedding_text(),
        count_tokens(chunk.text),
    )


def _chunk(row: Row) -> Chunk:
    return Chunk(
        id=row["id"],
        doc_id=row["doc_id"],
        index=row["index"],
        text=row["text"],
        heading_path=tuple(row["heading_path"]),
        title=row["title"],
        source=row["source"],
        metadata=json.loads(row["metadata"]),
        path=row["path"],
    )


# The embedder of this process, by KIT_EMBEDDER: an executor's Python worker loads the model on
# its first batch and keeps it for every later batch and task (Spark reuses its workers).
_EMBEDDERS: dict[str, Embedder] = {}


def executor_embedder(settings: KitSettings) -> Embedder:
    if settings.embedder not in _EMBEDDERS:
        alias = gateway_model(settings.embedder)
        if alias is None:
            from kit.llm.local_models import load_embedder

            _EMBEDDERS[settings.embedder] = load_embedder(settings)
        else:
            from kit.llm.embedders import GatewayEmbedder
            from kit.llm.gateway_client import GatewayClient

            key = settings.gateway_api_key
            client = GatewayClient(
                str(settings.gateway_url), api_key=key.get_secret_value() if key else None
            )
            _EMBEDDERS[settings.embedder] = GatewayEmbedder(
                client, alias, settings.embed_batch_size
            )
    return _EMBEDDERS[settings.embedder]


def _embed_and_write(
    spark: SparkSession,
    chunks: DataFrame,
    fresh: set[str],
    store: ChunkStore,
    batch_size: int,
    settings: KitSettings,
) -> None:
    """Embed the `fresh` chunks on the executors and store them, `batch_size` at a time."""
    if not fresh:
        return
    from pyspark import StorageLevel
    from pyspark.sql.functions import broadcast, col
    from pyspark.sql.pandas.functions import pandas_udf

    # pyspark types the UDF by pandas-stubs, which the kit does not install.
    @pandas_udf("array<float>")  # type: ignore[call-overload, untyped-decorator]
    def embed(texts: pd.Series) -> pd.Series:
        vectors = executor_embedder(settings).embed(texts.tolist())
        return pd.Series(list(vectors))

    # The new ids as a small table joined to every partition (a broadcast join: no shuffle).
    ids = spark.createDataFrame([(chunk_id,) for chunk_id in sorted(fresh)], "id string")
    todo = chunks.join(broadcast(ids), "id")
    embedded = todo.withColumn("vector", embed(col("embed_text")))
    if writes_from_executors(settings):
        collection = store.collection
        embedded.foreachPartition(
            lambda partition: _write_partition(partition, settings, collection, batch_size)
        )
    else:
        # toLocalIterator runs one job per partition, one after another: embed every partition
        # in parallel first (kept in executor memory, spilled to disk when large), then stream
        # them to the driver. A crash before the writes loses only this run's embeddings.
        embedded = embedded.persist(StorageLevel.MEMORY_AND_DISK)
        embedded.count()
        _write(embedded.toLocalIterator(), store, batch_size)
        embedded.unpersist()


def _write_partition(
    partition: Iterable[Row], settings: KitSettings, collection: str, batch_size: int
) -> None:
    """On an executor: its partition's chunks, written to the store server in batches."""
    with open_store(settings, collection) as store:
        _write(partition, store, batch_size)


def _write(rows: Iterable[Row], store: ChunkStore, batch_size: int) -> None:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            _upsert(batch, store)
            batch = []
    if batch:
        _upsert(batch, store)


def _upsert(rows: list[Row], store: ChunkStore) -> None:
    vectors: npt.NDArray[np.float32] = np.asarray([row["vector"] for row in rows], np.float32)
    store.upsert([_chunk(row) for row in rows], vectors)


def _quality(spark: SparkSession, chunks: DataFrame, max_tokens: int) -> dict[str, int]:
    """Data-quality counts in Spark SQL: chunks with no text, chunks whose text repeats another's
    (each copy past the first), and chunks over the token budget (the embedder reads 256 word
    pieces at most; a chunk over `max_tokens` is a chunker or input problem)."""
    chunks.createOrReplaceTempView("kit_chunks")
    counts = spark.sql(
        """
        SELECT
          (SELECT count(*) FROM kit_chunks WHERE trim(text) = '') AS empty,
          (SELECT coalesce(sum(n - 1), 0)
             FROM (SELECT count(*) AS n FROM kit_chunks GROUP BY text HAVING n > 1)) AS duplicate,
          (SELECT count(*) FROM kit_chunks WHERE tokens > :max_tokens) AS over_long
        """,
        args={"max_tokens": max_tokens},
    ).first()
    assert counts is not None  # one row, always
    return {name: int(counts[name]) for name in ("empty", "duplicate", "over_long")}
