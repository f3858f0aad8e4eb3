"""A shipped corpus (data/fastapi-docs/docs/advanced, 34 pages) through both engines into two
in-memory Qdrant stores: the same chunk ids, the same vectors within 1e-5, the same counts.

Slow: Spark's JVM start and the embedding of some hundreds of chunks twice take about a minute
on 2 cores, more than the fast tiers allow a test (the fast check on a few pages is in
tests/integration/test_spark_ingest.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from kit.core.settings import KitSettings
from kit.llm.local_models import load_embedder
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.qdrant_store import DENSE, QdrantStore
from tests.support.servers import require_spark

require_spark()  # skips without pyspark or Java; fails in CI, which installs both

from kit.rag.spark_ingest import ingest_with_spark, spark_session  # noqa: E402 (after the check)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DATA = Path(__file__).resolve().parents[2] / "data"
CORPUS = DATA / "fastapi-docs/docs/advanced"


def vectors_by_id(store: QdrantStore) -> dict[str, np.ndarray]:
    points, _ = store.client.scroll(store.collection, limit=100_000, with_vectors=True)
    return {str(p.id): np.asarray(p.vector[DENSE]) for p in points}  # type: ignore[index]


def test_both_engines_store_the_same_chunks_and_vectors_for_a_shipped_corpus(
    settings: KitSettings,
) -> None:
    embedder = load_embedder(settings)
    local, spark_store = (QdrantStore(QdrantClient(":memory:"), name) for name in ("a", "b"))

    started = time.perf_counter()
    expected = ingest([CORPUS], local, embedder, IngestOptions(), root=DATA)
    local_seconds = time.perf_counter() - started

    started = time.perf_counter()
    spark = spark_session("local[2]")
    jvm_seconds = time.perf_counter() - started
    try:
        report = ingest_with_spark(
            spark, [CORPUS], spark_store, embedder, IngestOptions(), root=DATA, settings=settings
        )
    finally:
        spark.stop()
    spark_seconds = time.perf_counter() - started
    print(  # shown with -s: the figures quoted in pipelines/README.md
        f"\n{expected.chunks['added']} chunks: local {local_seconds:.1f} s, "
        f"spark {spark_seconds:.1f} s (JVM start {jvm_seconds:.1f} s; {dict(report.timings)})"
    )

    assert report.documents == expected.documents and report.chunks == expected.chunks
    assert report.documents["added"] == len(list(CORPUS.rglob("*.md")))
    assert spark_store.chunk_ids_by_doc() == local.chunk_ids_by_doc()
    assert all(doc_id.startswith("fastapi-docs/docs/advanced/") for doc_id in local.paths_by_doc())
    local_vectors, spark_vectors = vectors_by_id(local), vectors_by_id(spark_store)
    assert local_vectors.keys() == spark_vectors.keys()
    for chunk_id, vector in local_vectors.items():
        np.testing.assert_allclose(spark_vectors[chunk_id], vector, atol=1e-5)
    assert report.quality["empty"] == 0
