"""Ingestion into a real Qdrant (local mode) with the real embedder: incremental and resumable,
with ids relative to the docs root, so a subfolder's run touches nothing outside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from qdrant_client import QdrantClient

from kit.core.errors import ConfigError
from kit.llm.local_client import LocalClient
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.paths import OUTSIDE_ROOT
from kit.rag.qdrant_store import QdrantStore
from kit.rag.retrieval import Retriever
from kit.rag.store import DOC_IDS

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
def store() -> QdrantStore:
    return QdrantStore(QdrantClient(":memory:"), "test")


def run(  # type: ignore[no-untyped-def]
    corpus: Path, store: QdrantStore, embed: CountingEmbedder, root: Path | None = None, **options
):
    """Ingest `corpus`; ids are relative to `root` (default: the corpus itself)."""
    options = IngestOptions(batch_size=2, **options)
    return ingest([corpus], store, embed, options, root=root or corpus)  # type: ignore[arg-type]


def test_a_second_run_on_unchanged_files_embeds_nothing(
    corpus: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    first_embedder, second_embedder = CountingEmbedder(local_client), CountingEmbedder(local_client)

    first = run(corpus, store, first_embedder)
    second = run(corpus, store, second_embedder)

    assert first.documents["added"] == 3 and first_embedder.texts == first.chunks["added"] > 0
    assert second.documents["unchanged"] == 3 and second.chunks["added"] == 0
    assert second_embedder.texts == 0
    assert store.count() == first.chunks["added"]


def test_a_changed_document_replaces_its_old_chunks(
    corpus: Path, store: QdrantStore, local_client: LocalClient
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
    corpus: Path, store: QdrantStore, local_client: LocalClient
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
    corpus: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    run(corpus, store, CountingEmbedder(local_client))
    for name in PAGES:  # every page changes; the run dies after its first embedding batch
        (corpus / name).write_text(PAGES[name] + "\n\nA new closing paragraph.")
    reference = QdrantStore(QdrantClient(":memory:"), "fresh")  # the same files, ingested once
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
    memory = QdrantStore(QdrantClient(":memory:"), "docs")
    on_disk = QdrantStore(QdrantClient(path=str(tmp_path / "qdrant")), "docs")
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
    corpus: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    run(corpus, store, CountingEmbedder(local_client))
    retriever = Retriever(store, local_client.embedder.embed)

    keyword = retriever.search("HttpOnly", k=1, mode="keyword")
    dense = retriever.search("how many processes should serve my app", k=1, mode="dense")
    filtered = retriever.search("parameters", k=5, filters={"doc_id": "guide/headers.md"})

    assert keyword[0].doc_id == "guide/cookies.md"
    assert dense[0].doc_id == "deploy/workers.md"
    assert {hit.doc_id for hit in filtered} == {"guide/headers.md"}


# Ids relative to the docs root: a subfolder's run touches nothing outside it ---------------------


def chunks_of(store: QdrantStore) -> dict[str, set[str]]:
    return {doc: ids for doc, ids in store.chunk_ids_by_doc().items() if ids}


def test_ingesting_a_subfolder_keeps_every_id_and_prunes_nothing_outside_it(
    tmp_path: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    """The old ids were relative to the folder named: guide/page.md became "page.md" when guide/
    was ingested on its own, overwriting the root's own page.md, and prune then deleted
    "guide/page.md" because its source path started with the folder's."""
    root = write_pages(
        tmp_path / "docs",
        {
            "page.md": "# Root page\n\nCookies are read with the Cookie parameter.",
            "guide/page.md": "# Guide page\n\nHeaders are declared with Header.",
            "guide/other.md": "# Other\n\nWorkers use every core.",
        },
    )
    embedder = CountingEmbedder(local_client)
    run(root, store, embedder, root)
    before = chunks_of(store)
    (root / "guide/other.md").unlink()

    report = run(root / "guide", store, embedder, root, prune=True)

    assert set(before) == {"page.md", "guide/page.md", "guide/other.md"}
    assert (report.documents["unchanged"], report.documents["added"]) == (1, 0)
    assert report.documents["pruned"] == 1  # guide/other.md, which is gone
    after = chunks_of(store)
    assert after == {doc: before[doc] for doc in ("page.md", "guide/page.md")}


def test_prune_of_a_folder_spares_a_sibling_that_shares_its_name_as_a_prefix(
    tmp_path: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    root = write_pages(
        tmp_path / "data",
        {
            "docs/a.md": "# A\n\nCookies are read with the Cookie parameter.",
            "docs2/b.md": "# B\n\nHeaders are declared with Header.",
        },
    )
    embedder = CountingEmbedder(local_client)
    run(root, store, embedder, root)
    (root / "docs/a.md").unlink()
    write_pages(root, {"docs/c.md": "# C\n\nWorkers use every core."})

    report = run(root / "docs", store, embedder, root, prune=True)

    assert report.documents["pruned"] == 1
    assert set(chunks_of(store)) == {"docs/c.md", "docs2/b.md"}  # docs2 was never "in" docs


def test_prune_removes_records_whose_file_lost_them_and_keeps_other_files_records(
    tmp_path: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    root = tmp_path / "data"
    faq = write_pages(root, {"faq/a.jsonl": '{"id": "r1", "text": "Cookies are read."}\n'})
    write_pages(root, {"notes/b.jsonl": '{"id": "r2", "text": "Headers are declared."}\n'})
    embedder = CountingEmbedder(local_client)
    run(root, store, embedder, root)
    (faq / "faq/a.jsonl").write_text('{"id": "r3", "text": "Workers use every core."}\n')

    report = run(root / "faq", store, embedder, root, prune=True)

    assert report.documents["pruned"] == 1  # r1: its file no longer holds it
    assert set(chunks_of(store)) == {"r2", "r3"}
    assert store.paths_by_doc() == {"r2": "notes/b.jsonl", "r3": "faq/a.jsonl"}


def test_a_symlink_to_a_secret_outside_the_root_is_skipped_and_never_stored(
    tmp_path: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("The database password is hunter2.")
    root = write_pages(tmp_path / "data", {"page.md": "# Page\n\nCookies are read."})
    (root / "notes.txt").symlink_to(secret)

    report = run(root, store, CountingEmbedder(local_client), root)
    texts = [hit.text for hit in Retriever(store, local_client.embedder.embed).search("password")]

    assert [(s.source, s.reason) for s in report.skipped] == [("notes.txt", OUTSIDE_ROOT)]
    assert set(chunks_of(store)) == {"page.md"}
    assert not any("hunter2" in text for text in texts)


def test_sources_and_paths_in_the_index_are_root_relative(
    corpus: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    run(corpus, store, CountingEmbedder(local_client))

    hits = Retriever(store, local_client.embedder.embed).search("cookies", k=10)

    assert {hit.source for hit in hits} <= set(PAGES)
    assert not any(str(corpus) in hit.source for hit in hits)
    assert store.paths_by_doc() == {name: name for name in PAGES}


def test_a_collection_built_with_the_old_ids_is_refused_until_rebuilt(
    corpus: Path, store: QdrantStore, local_client: LocalClient
) -> None:
    """Before ids were relative to the docs root, the collection had no "doc_ids" mark and its
    sources were absolute: ingesting into it would store each page again under a new id."""
    run(corpus, store, CountingEmbedder(local_client))
    store.client.update_collection(store.collection, metadata={"doc_ids": None})
    legacy = store.count()

    with pytest.raises(ConfigError, match=r"earlier version of the kit.*kit ingest --rebuild"):
        run(corpus, store, CountingEmbedder(local_client))
    with pytest.raises(ConfigError, match="earlier version"):
        store.check_collection("all-minilm-l6-v2")  # what search, /ask and eval check first
    unchanged = store.count()
    rebuilt = run(corpus, store, CountingEmbedder(local_client), rebuild=True)

    assert unchanged == legacy  # the refusal stored nothing
    assert rebuilt.documents["added"] == 3 and store.count() == rebuilt.chunks["added"]
    assert store.client.get_collection(store.collection).config.metadata["doc_ids"] == DOC_IDS
    store.check_collection("all-minilm-l6-v2")  # passes now


@pytest.mark.parametrize(
    ("named", "error", "says"),
    [("..", ConfigError, "outside KIT_DOCS_ROOT"), ("typo", FileNotFoundError, "does not exist")],
)
def test_a_bad_path_stops_the_run_before_the_collection_changes(
    corpus: Path,
    store: QdrantStore,
    local_client: LocalClient,
    named: str,
    error: type[Exception],
    says: str,
) -> None:
    run(corpus, store, CountingEmbedder(local_client))
    before = store.count()

    with pytest.raises(error, match=says):
        run(corpus / named, store, CountingEmbedder(local_client), corpus, rebuild=True)

    assert store.count() == before  # not even --rebuild's drop happened


def test_kit_ingest_and_search_use_the_collection_the_settings_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAG_COLLECTION is one setting for every command: before, `kit ingest` and `kit search`
    wrote to and read "docs" whatever it said, while the RAG service searched RAG_COLLECTION."""
    from typer.testing import CliRunner

    from kit.cli.app import app

    docs = write_pages(tmp_path / "docs-root", PAGES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIT_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KIT_DOCS_ROOT", str(docs))
    monkeypatch.setenv("RAG_COLLECTION", "handbook")
    runner = CliRunner()

    ingested = runner.invoke(app, ["ingest", str(docs)])
    found = runner.invoke(app, ["search", "HttpOnly cookies", "--k", "1", "--json"])
    with QdrantStore(QdrantClient(path=str(tmp_path / "state" / "qdrant")), "docs") as default:
        in_docs = default.count()

    assert ingested.exit_code == 0, ingested.output
    assert "in 'handbook'" in ingested.output
    assert found.exit_code == 0, found.output
    assert '"doc_id": "guide/cookies.md"' in found.output
    assert in_docs == 0  # nothing went to the default collection
