"""Ingestion into a real Qdrant (local mode) with the real embedder: incremental and resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from qdrant_client import QdrantClient

from pipelines.ingest.index import ChunkStore
from pipelines.ingest.run import IngestOptions, ingest
from pipelines.retrieval import Retriever
from services.common.local_client import LocalClient

PAGES = {
    "guide/cookies.md": "# Cookies\n\nRead a cookie with the Cookie parameter.\n\n"
    "## Security\n\nMark session cookies HttpOnly so scripts cannot read them.",
    "guide/headers.md": "# Headers\n\nHeader parameters are declared with Header.\n\n"
    "Underscores in names are converted to hyphens automatically.",
    "deploy/workers.md": "# Workers\n\nRun several worker processes to use every CPU core.",
}


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed (what incremental must save)."""

    def __init__(self, client: LocalClient, fail_after_calls: int | None = None) -> None:
        self.client = client
        self.texts = 0
        self.calls = 0
        self.fail_after_calls = fail_after_calls

    name = "all-minilm-l6-v2"
    dimension = 384

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("simulated crash mid-run")
        self.calls += 1
        self.texts += len(texts)
        return self.client.embedder.embed(texts)


def write_pages(root: Path, pages: dict[str, str]) -> Path:
    for name, text in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_pages(tmp_path / "corpus", PAGES)


@pytest.fixture
def store() -> ChunkStore:
    return ChunkStore(QdrantClient(":memory:"), "test")


def run(corpus: Path, store: ChunkStore, embed: CountingEmbedder, **options: object):  # type: ignore[no-untyped-def]
    return ingest([corpus], store, embed, IngestOptions(batch_size=2, **options))  # type: ignore[arg-type]


def test_a_second_run_on_unchanged_files_embeds_nothing(
    corpus: Path, store: ChunkStore, local_client: LocalClient
) -> None:
    first_embedder, second_embedder = CountingEmbedder(local_client), CountingEmbedder(local_client)

    first = run(corpus, store, first_embedder)
    second = run(corpus, store, second_embedder)

    assert first.documents["added"] == 3 and first_embedder.texts == first.chunks["added"] > 0
    assert second.documents["unchanged"] == 3 and second.chunks["added"] == 0
    assert second_embedder.texts == 0
    assert store.count() == first.chunks["added"]


def test_a_changed_document_replaces_its_old_chunks(
    corpus: Path, store: ChunkStore, local_client: LocalClient
) -> None:
    embedder = CountingEmbedder(local_client)
    run(corpus, store, embedder)
    before = store.count()
    (corpus / "guide/cookies.md").write_text(
        PAGES["guide/cookies.md"].replace("HttpOnly", "HttpOnly and Secure")
    )

    report = run(corpus, store, CountingEmbedder(local_client))
    hits = Retriever(store, local_client.embedder.embed).search("Secure cookies", k=10)

    assert (report.documents["updated"], report.documents["unchanged"]) == (1, 2)
    assert report.chunks["added"] == report.chunks["removed"] == 1  # only the edited section
    assert store.count() == before
    texts = [hit.text for hit in hits if hit.doc_id == "guide/cookies.md"]
    assert any("HttpOnly and Secure" in text for text in texts)
    assert not any(text.endswith("HttpOnly so scripts cannot read them.") for text in texts)


def test_prune_removes_documents_whose_files_are_gone(
    corpus: Path, store: ChunkStore, local_client: LocalClient
) -> None:
    run(corpus, store, CountingEmbedder(local_client))
    (corpus / "deploy/workers.md").unlink()

    kept = run(corpus, store, CountingEmbedder(local_client))
    still_there = "deploy/workers.md" in store.chunk_ids_by_doc()
    pruned = run(corpus, store, CountingEmbedder(local_client), prune=True)

    assert kept.documents["pruned"] == 0 and still_there  # without --prune nothing is deleted
    assert pruned.documents["pruned"] == 1
    assert set(store.chunk_ids_by_doc()) == {"guide/cookies.md", "guide/headers.md"}


def test_a_crashed_run_rerun_leaves_no_duplicates_and_no_gaps(
    corpus: Path, store: ChunkStore, local_client: LocalClient
) -> None:
    run(corpus, store, CountingEmbedder(local_client))
    for name in PAGES:  # every page changes; the run dies after its first embedding batch
        (corpus / name).write_text(PAGES[name] + "\n\nA new closing paragraph.")
    reference = ChunkStore(QdrantClient(":memory:"), "fresh")  # the same files, ingested once
    run(corpus, reference, CountingEmbedder(local_client))

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(corpus, store, CountingEmbedder(local_client, fail_after_calls=1))
    resumed = run(corpus, store, CountingEmbedder(local_client))

    assert store.chunk_ids_by_doc() == reference.chunk_ids_by_doc()
    assert store.count() == reference.count()
    assert resumed.chunks["added"] > 0  # it finished what the crash left


def test_local_memory_and_local_path_stores_return_the_same_results(
    corpus: Path, tmp_path: Path, local_client: LocalClient
) -> None:
    memory = ChunkStore(QdrantClient(":memory:"), "docs")
    on_disk = ChunkStore(QdrantClient(path=str(tmp_path / "qdrant")), "docs")
    for store in (memory, on_disk):
        run(corpus, store, CountingEmbedder(local_client))

    for mode in ("hybrid", "dense", "keyword"):
        results = [
            [
                (hit.chunk_id, round(hit.score, 5))
                for hit in Retriever(store, local_client.embedder.embed).search(
                    "header underscores", k=4, mode=mode
                )
            ]
            for store in (memory, on_disk)
        ]
        assert results[0] == results[1] and results[0], mode
    on_disk.close()


def test_filters_and_modes_find_the_right_document(
    corpus: Path, store: ChunkStore, local_client: LocalClient
) -> None:
    run(corpus, store, CountingEmbedder(local_client))
    retriever = Retriever(store, local_client.embedder.embed)

    keyword = retriever.search("HttpOnly", k=1, mode="keyword")
    dense = retriever.search("how many processes should serve my app", k=1, mode="dense")
    filtered = retriever.search("parameters", k=5, filters={"doc_id": "guide/headers.md"})

    assert keyword[0].doc_id == "guide/cookies.md"
    assert dense[0].doc_id == "deploy/workers.md"
    assert {hit.doc_id for hit in filtered} == {"guide/headers.md"}
