"""Qdrant unavailable: the RAG API answers a clear 503 and recovers by itself; ingestion stops
cleanly, leaves a consistent collection, and a re-run finishes the job. Clients read what failed
and a request id; Qdrant's address and the fix are in the log, for the operator.

Three network faults are real (nothing listening, a server that hangs up, a server that never
answers, all on 127.0.0.1). An outage in the middle of a run needs a Qdrant server to go away,
and none can run here: for those tests `FlakyQdrant` (tests/support/qdrant_faults.py) wraps a
real local-mode client and raises what qdrant-client raises for a refused connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from kit.llm.local_client import LocalClient
from kit.llm.scripted import ScriptedModel
from kit.rag.chunk import ChunkingConfig, chunk_document
from kit.rag.documents import Document
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.loaders import load_file
from kit.rag.paths import DocsRoot, discover
from kit.rag.qdrant_store import QdrantStore
from kit.rag.store import StoreUnavailableError
from kit.rag_service.app import create_app
from kit.rag_service.settings import RagSettings
from tests.support.qdrant_faults import URL, FlakyQdrant
from tests.support.servers import free_port, misbehaving_server

PAGES = {
    f"guide/{topic}.md": f"# {topic.title()}\n\n{body}\n\n## Details\n\n{details}"
    for topic, body, details in [
        ("cookies", "Read a cookie with the Cookie parameter.", "Mark session cookies HttpOnly."),
        ("headers", "Declare headers with Header.", "Underscores become hyphens."),
        ("workers", "Run several worker processes.", "One per CPU core is a good start."),
        ("paths", "Path parameters are typed.", "FastAPI converts and validates them."),
        ("forms", "Read form fields with Form.", "Install python-multipart first."),
        ("files", "Receive uploads with UploadFile.", "Large files are spooled to disk."),
    ]
}
QUESTION = {"question": "How do I read a cookie?"}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for name, text in PAGES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def expected_chunk_ids(corpus: Path) -> set[str]:
    """The chunks the corpus should produce, computed without embedding (as in
    tests/e2e/test_ingest_resume.py)."""
    ids: set[str] = set()
    root = DocsRoot.at(corpus)
    for file in discover([corpus], root):
        assert isinstance(file, Path), file
        for item in load_file(file, root.path):
            if isinstance(item, Document):
                ids |= {chunk.id for chunk in chunk_document(item, ChunkingConfig())}
    return ids


def stored_ids(client: QdrantClient, collection: str = "docs") -> list[str]:
    """Every point id in the collection, duplicates included if there were any."""
    ids: list[str] = []
    offset = None
    while True:
        points, offset = client.scroll(collection, limit=256, offset=offset, with_payload=False)
        ids += [str(point.id) for point in points]
        if offset is None:
            return ids


def rag_settings(tmp_path: Path, **overrides: Any) -> RagSettings:
    return RagSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "state",
        query_log=None,
        auth="open",  # these tests are about Qdrant; who may call is test_rag_auth.py's
        **overrides,
    )


@pytest.mark.parametrize("fault", ["refused", "close", "silent"])
def test_ask_and_readyz_answer_503_and_the_log_names_the_unreachable_qdrant(
    fault: Literal["refused", "close", "silent"],
    tmp_path: Path,
    local_client: LocalClient,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """QDRANT_URL at a port where nothing listens, a server that hangs up, or one that never
    answers: no 500 and no hang, but a 503 saying Qdrant is unreachable, with the request id
    whose log line names the URL and the fix."""
    with ExitStack() as stack:
        port = free_port() if fault == "refused" else stack.enter_context(misbehaving_server(fault))
        url = f"http://127.0.0.1:{port}"
        # 1 s per request: the "silent" server must cost a timeout, not a hang.
        settings = rag_settings(tmp_path, qdrant_url=url, qdrant_timeout_s=1)
        app = create_app(
            settings,
            llm=ScriptedModel.repeating("Use the Cookie parameter [1]."),
            embedder=local_client.embedder,
        )
        with TestClient(app) as client:  # the service starts although Qdrant is down
            started = time.monotonic()
            ready = client.get("/readyz")
            asked = client.post("/ask", json=QUESTION)
            elapsed = time.monotonic() - started

    log = " ".join(capfd.readouterr().err.split())
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert "Qdrant is unreachable" in ready.json()["reason"]
    assert ready.headers["x-request-id"] in ready.json()["reason"]
    assert asked.status_code == 503, asked.text
    error = asked.json()["error"]
    assert error["type"] == "store_unavailable"
    assert "The store where the documents are indexed is unreachable" in error["message"]
    assert asked.headers["x-request-id"] in error["message"]
    for response in (ready, asked):  # the address and the library's words stay in the log
        assert url not in response.text and "Error" not in response.text
    assert f"Qdrant is unreachable at {url}" in log
    assert "QDRANT_URL" in log and "kit doctor" in log
    if fault == "silent":
        assert "no answer within 1s" in log
    assert "Traceback" not in asked.text
    assert elapsed < 60  # bounded by the 1 s client timeout; generous for a loaded machine


def test_the_service_starts_while_qdrant_is_down_and_recovers_without_a_restart(
    tmp_path: Path, corpus: Path, local_client: LocalClient
) -> None:
    flaky = FlakyQdrant(QdrantClient(":memory:"))
    store = QdrantStore(cast(QdrantClient, flaky), "docs")
    ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    flaky.down = True
    app = create_app(
        rag_settings(tmp_path),
        llm=ScriptedModel.repeating("Use the Cookie parameter [1]."),
        store=store,
        embedder=local_client.embedder,
    )

    with TestClient(app) as client:
        ready_while_down = client.get("/readyz")
        asked_while_down = client.post("/ask", json=QUESTION)
        flaky.down = False  # Qdrant is back; the service is not restarted
        ready_after = client.get("/readyz")
        asked_after = client.post("/ask", json=QUESTION | {"include_contexts": True})

    assert ready_while_down.status_code == 503
    assert "Qdrant is unreachable" in ready_while_down.json()["reason"]
    assert asked_while_down.status_code == 503
    assert asked_while_down.json()["error"]["type"] == "store_unavailable"
    assert ready_after.status_code == 200
    assert ready_after.json()["chunks"] == len(expected_chunk_ids(corpus))
    assert asked_after.status_code == 200, asked_after.text
    body = asked_after.json()
    assert body["contexts"][0]["doc_id"] == "guide/cookies.md"
    assert [c["doc_id"] for c in body["citations"]] == ["guide/cookies.md"]


@pytest.fixture
def flaky_store() -> Iterator[tuple[FlakyQdrant, QdrantStore]]:
    flaky = FlakyQdrant(QdrantClient(":memory:"))
    store = QdrantStore(cast(QdrantClient, flaky), "docs")
    yield flaky, store
    flaky.real.close()


def test_an_ingest_stopped_by_a_qdrant_outage_resumes_with_every_chunk_once(
    corpus: Path, flaky_store: tuple[FlakyQdrant, QdrantStore], local_client: LocalClient
) -> None:
    flaky, store = flaky_store
    expected = expected_chunk_ids(corpus)  # 6 pages of 2 chunks
    options = IngestOptions(batch_size=2)  # one page per upsert, so the outage lands midway
    flaky.outage_after = ("upsert", 2)  # Qdrant goes away after two pages are stored

    with pytest.raises(StoreUnavailableError) as stopped:
        ingest([corpus], store, local_client.embedder, options, root=corpus)
    flaky.down = False  # back, for the checks and the re-run (same client: no restart)
    at_outage = stored_ids(flaky.real)
    resumed = ingest([corpus], store, local_client.embedder, options, root=corpus)
    final = stored_ids(flaky.real)

    message = str(stopped.value)
    assert f"Qdrant is unreachable at {URL}" in message and "QDRANT_URL" in message
    assert "running it again embeds and stores only what is missing" in message
    # What the outage left is consistent: the two stored pages, whole, and nothing else.
    assert len(at_outage) == 4 and set(at_outage) <= expected
    # The re-run trusts only what is stored: the two pages are skipped, the rest is done.
    assert (resumed.documents["unchanged"], resumed.documents["added"]) == (2, 4)
    assert resumed.chunks["added"] == len(expected) - 4
    assert resumed.chunks["unchanged"] == 4
    assert len(final) == len(set(final)) == len(expected)
    assert set(final) == expected


def test_an_outage_between_storing_and_deleting_leaves_extra_chunks_never_missing_ones(
    corpus: Path, flaky_store: tuple[FlakyQdrant, QdrantStore], local_client: LocalClient
) -> None:
    """A changed page's new chunks are stored before its old ones are deleted: an outage in
    between leaves both, never neither, and the re-run removes the stale ones."""
    flaky, store = flaky_store
    ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    old = store.chunk_ids_by_doc()
    for name, text in PAGES.items():
        (corpus / name).write_text(text.replace("## Details", "## More details"))
    expected = expected_chunk_ids(corpus)
    flaky.outage_after = ("delete", 0)  # down just as the first stale chunks are deleted

    with pytest.raises(StoreUnavailableError):
        ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    flaky.down = False
    at_outage = set(stored_ids(flaky.real))
    resumed = ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    final = stored_ids(flaky.real)

    assert expected <= at_outage  # every new chunk was stored...
    assert set().union(*old.values()) - expected <= at_outage  # ...and no old one was lost
    assert resumed.chunks["added"] == 0 and resumed.chunks["removed"] > 0
    assert len(final) == len(set(final)) == len(expected) and set(final) == expected
