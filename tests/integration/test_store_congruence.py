"""The same corpus and the same questions through both stores give the same results.

As qdrant-client's own congruence tests compare its local mode with a server, these compare
Qdrant (local mode: exact search) with Postgres + pgvector (an HNSW index, a real server): one
shipped corpus (the FastAPI docs' `advanced/` section) is ingested into each, then each of the
181 evaluation questions is asked in each mode.

What must agree, and how closely:
- dense: the same top 10 in the same order, cosine scores within 1e-5. HNSW is approximate, but
  with `hnsw.ef_search` = 100 over a few hundred chunks it visits them all; 1e-5 is float32
  arithmetic done in two programs.
- keyword: the same BM25 x IDF score at every rank (within 1e-4, relative), so the same top 10
  except where scores tie exactly at the cut, where either store may keep either chunk.
- hybrid: the same top 5, except where a tie in the keyword list changes a rank: fused scores
  are sums of 1 / (rank + 2), so one swapped tie moves two chunks by at most 1/(r+2) - 1/(r+3).
  At least 95% of the questions have identical top 5 ids, and every question shares at least
  4 of its 5.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from qdrant_client import QdrantClient

from kit.llm.local_client import LocalClient
from kit.rag import sparse
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.pgvector_store import PgvectorStore
from kit.rag.qdrant_store import QdrantStore
from kit.rag.store import ChunkStore, Hit

ROOT = Path("data")
CORPUS = ROOT / "fastapi-docs" / "docs" / "advanced"
QUESTIONS = Path("data/rag/fastapi-docs-questions.jsonl")


class RememberingEmbedder:
    """The shipped embedder, embedding each text once however many stores are filled."""

    name = "all-minilm-l6-v2"
    dimension = 384

    def __init__(self, client: LocalClient) -> None:
        self.client = client
        self.seen: dict[str, npt.NDArray[np.float32]] = {}

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        missing = [text for text in dict.fromkeys(texts) if text not in self.seen]
        if missing:
            self.seen.update(zip(missing, self.client.embedder.embed(missing), strict=True))
        return np.stack([self.seen[text] for text in texts])


@pytest.fixture(scope="module")
def stores(
    local_client: LocalClient, postgres_server: str
) -> Iterator[tuple[ChunkStore, ChunkStore, RememberingEmbedder]]:
    embedder = RememberingEmbedder(local_client)
    qdrant = QdrantStore(QdrantClient(":memory:"), "congruence")
    pgvector = PgvectorStore(postgres_server, "congruence")
    pgvector.drop()
    with qdrant, pgvector:
        for store in (qdrant, pgvector):
            ingest([CORPUS], store, embedder, IngestOptions(), root=ROOT)
        yield qdrant, pgvector, embedder
        pgvector.drop()


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()]


def ids(hits: list[Hit]) -> list[str]:
    return [hit.chunk_id for hit in hits]


def test_both_stores_hold_the_same_chunks(
    stores: tuple[ChunkStore, ChunkStore, RememberingEmbedder],
) -> None:
    qdrant, pgvector, _ = stores

    assert qdrant.count() == pgvector.count() > 200
    assert qdrant.chunk_ids_by_doc() == pgvector.chunk_ids_by_doc()
    assert qdrant.paths_by_doc() == pgvector.paths_by_doc()


def test_dense_search_is_the_same_top_10_with_the_same_scores(
    stores: tuple[ChunkStore, ChunkStore, RememberingEmbedder], questions: list[str]
) -> None:
    qdrant, pgvector, embedder = stores
    vectors = embedder.embed(questions)

    for question, vector in zip(questions, vectors, strict=True):
        expected = qdrant.search(vector=vector.tolist(), k=10)
        found = pgvector.search(vector=vector.tolist(), k=10)
        assert ids(found) == ids(expected), question
        assert [h.score for h in found] == pytest.approx([h.score for h in expected], abs=1e-5)


def test_keyword_search_scores_every_rank_alike(
    stores: tuple[ChunkStore, ChunkStore, RememberingEmbedder], questions: list[str]
) -> None:
    qdrant, pgvector, _ = stores

    for question in questions:
        terms = sparse.query_vector(question)
        expected, found = qdrant.search(terms=terms, k=10), pgvector.search(terms=terms, k=10)
        assert [h.score for h in found] == pytest.approx([h.score for h in expected], rel=1e-4)
        if expected:  # the same chunks, but for ties at the cut
            cut = expected[-1].score
            above = {h.chunk_id for h in expected if h.score > cut * (1 + 1e-4)}
            assert above <= set(ids(found)), question


def test_hybrid_search_agrees_but_for_ties(
    stores: tuple[ChunkStore, ChunkStore, RememberingEmbedder], questions: list[str]
) -> None:
    qdrant, pgvector, embedder = stores
    vectors = embedder.embed(questions)
    identical, shared = 0, []

    for question, vector in zip(questions, vectors, strict=True):
        terms = sparse.query_vector(question)
        expected = ids(qdrant.search(vector=vector.tolist(), terms=terms, k=5))
        found = ids(pgvector.search(vector=vector.tolist(), terms=terms, k=5))
        identical += expected == found
        shared.append(len(set(expected) & set(found)))

    assert identical >= 0.95 * len(questions)
    assert min(shared) >= 4
