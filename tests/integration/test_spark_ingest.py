"""The spark engine against the local one, on real Spark (local[2]), Qdrant local mode and a real
Postgres: the same chunk ids per document, the same vectors, the same report; incremental, and
prune honoured.

One Spark session serves the whole module: its JVM takes seconds to start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr
from qdrant_client import QdrantClient

from kit.core.settings import KitSettings
from kit.llm.local_client import LocalClient
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.pgvector_store import PgvectorStore
from kit.rag.qdrant_store import DENSE, QdrantStore
from kit.rag.report import IngestReport
from tests.integration.test_ingest_pipeline import PAGES, CountingEmbedder, write_pages
from tests.support.servers import require_spark

require_spark()  # skips without pyspark or Java; fails in CI, which installs both

from pyspark.sql import SparkSession  # noqa: E402 (after the check above)

from kit.rag.spark_ingest import ingest_with_spark, spark_session, writes_from_executors  # noqa: E402


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = spark_session("local[2]")
    yield session
    session.stop()


def vectors_by_id(store: QdrantStore) -> dict[str, np.ndarray]:
    points, _ = store.client.scroll(store.collection, limit=10_000, with_vectors=True)
    return {str(p.id): np.asarray(p.vector[DENSE]) for p in points}  # type: ignore[index]


def counts(report: IngestReport) -> tuple[dict[str, int], dict[str, int], int]:
    return dict(report.documents), dict(report.chunks), report.chunks_in_collection


def test_spark_gives_the_local_engines_ids_vectors_and_counts_and_stays_incremental(
    spark: SparkSession, tmp_path: Path, settings: KitSettings, local_client: LocalClient
) -> None:
    corpus = write_pages(tmp_path / "corpus", PAGES)
    options = IngestOptions(batch_size=2)
    local, spark_store = (QdrantStore(QdrantClient(":memory:"), name) for name in ("a", "b"))

    def run_spark(**changes: bool) -> IngestReport:
        opts = IngestOptions(batch_size=2, **changes)
        return ingest_with_spark(
            spark, [corpus], spark_store, embedder, opts, root=corpus, settings=settings
        )

    embedder = CountingEmbedder(local_client)
    expected = ingest([corpus], local, embedder, options, root=corpus)  # type: ignore[arg-type]
    first = run_spark()

    assert counts(first) == counts(expected)
    assert first.documents["added"] == 3
    assert spark_store.chunk_ids_by_doc() == local.chunk_ids_by_doc()
    local_vectors, spark_vectors = vectors_by_id(local), vectors_by_id(spark_store)
    assert local_vectors.keys() == spark_vectors.keys()
    for chunk_id, vector in local_vectors.items():
        np.testing.assert_allclose(spark_vectors[chunk_id], vector, atol=1e-5)
    assert first.quality == {"empty": 0, "duplicate": 0, "over_long": 0}

    second = run_spark()  # nothing changed: nothing embedded, nothing written
    assert second.documents["unchanged"] == 3
    assert second.chunks["added"] == 0 and second.chunks["removed"] == 0
    assert embedder.texts == first.chunks["added"]  # the driver's embedder never embedded

    # A changed file replaces its chunks; a deleted one is pruned; both as the local engine does.
    (corpus / "guide/headers.md").write_text("# Headers\n\nHeaders are read with Header().")
    (corpus / "deploy/workers.md").unlink()
    expected = ingest(  # type: ignore[arg-type]
        [corpus], local, embedder, IngestOptions(batch_size=2, prune=True), root=corpus
    )
    third = run_spark(prune=True)
    assert counts(third) == counts(expected)
    assert third.documents["updated"] == 1 and third.documents["pruned"] == 1
    assert spark_store.chunk_ids_by_doc() == local.chunk_ids_by_doc()
    assert "deploy/workers.md" not in spark_store.chunk_ids_by_doc()


def test_a_rerun_after_a_crash_stores_only_what_is_missing(
    spark: SparkSession, tmp_path: Path, settings: KitSettings, local_client: LocalClient
) -> None:
    corpus = write_pages(tmp_path / "corpus", PAGES)
    store = QdrantStore(QdrantClient(":memory:"), "crash")
    embedder = CountingEmbedder(local_client)
    ingest_with_spark(  # type: ignore[arg-type]
        spark, [corpus], store, embedder, IngestOptions(), root=corpus, settings=settings
    )
    complete = store.chunk_ids_by_doc()
    lost = sorted(complete["guide/cookies.md"])[:1]  # as if the run died before this write
    store.delete(lost)

    rerun = ingest_with_spark(  # type: ignore[arg-type]
        spark, [corpus], store, embedder, IngestOptions(), root=corpus, settings=settings
    )
    assert rerun.chunks["added"] == 1
    assert rerun.documents["updated"] == 1 and rerun.documents["unchanged"] == 2
    assert store.chunk_ids_by_doc() == complete


def test_executors_write_to_a_postgres_server_themselves(
    spark: SparkSession,
    tmp_path: Path,
    settings: KitSettings,
    local_client: LocalClient,
    database_url: str,
) -> None:
    """With a store server (here pgvector at DATABASE_URL) the executors open the store and
    write their partitions; the driver only plans. The result is the local engine's."""
    corpus = write_pages(tmp_path / "corpus", PAGES)
    server = settings.model_copy(
        update={"store": "pgvector", "database_url": SecretStr(database_url)}
    )
    assert writes_from_executors(server)
    local = QdrantStore(QdrantClient(":memory:"), "docs")
    embedder = CountingEmbedder(local_client)
    expected = ingest([corpus], local, embedder, IngestOptions(), root=corpus)  # type: ignore[arg-type]

    with PgvectorStore(database_url, "docs") as postgres:
        report = ingest_with_spark(  # type: ignore[arg-type]
            spark, [corpus], postgres, embedder, IngestOptions(), root=corpus, settings=server
        )
        assert counts(report) == counts(expected)
        assert postgres.chunk_ids_by_doc() == local.chunk_ids_by_doc()
        vectors = local_client.embedder.embed([PAGES["guide/cookies.md"]])
        found = postgres.search(vector=vectors[0].tolist(), k=1)[0]
        assert found.doc_id == "guide/cookies.md"
        assert found.score == pytest.approx(
            local.search(vector=vectors[0].tolist(), k=1)[0].score, abs=1e-5
        )
