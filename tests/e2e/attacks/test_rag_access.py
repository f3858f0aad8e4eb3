"""Finding 2 (RAG service without authentication) and the RAG part of finding 7 (leaks), attacked
on a real `kit serve rag` on 127.0.0.1.

The service answers from a small docs root (KIT_DOCS_ROOT) indexed by `kit ingest`, through a
fake OpenAI-compatible model at GATEWAY_URL; the attacks:
- call /ask and /ingest with no key, with an ask-only key, and with a key after its revocation;
- post /ingest again while a job runs (before: a thread per request, jobs kept forever);
- ingest a subfolder with prune (before: ids were relative to the folder named, so sub/page.md
  became "page.md", overwrote the root's page.md, and prune deleted "sub/page.md"), and prune a
  folder whose name prefixes a sibling's (before: "shelf2/..." matched "shelf" as a string);
- plant a symlink to a secret file outside the docs root (before: it was indexed and served);
- ask an off-topic question (before: the refusal carried the nearest chunks' full text);
- read citations, /ingest errors, /readyz and a model failure for server paths, Qdrant's
  address, exception text and the upstream's error body (before: all of them were there).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.attacks.rag import Rag, serve_rag
from tests.support.fake_openai import FakeUpstream, error, ok, running_fake_upstream
from tests.support.servers import free_port

pytestmark = pytest.mark.timeout(900)

PAGES = {
    "page.md": "# Marmalade protocol\n\nThe marmalade protocol retries a failed request three "
    "times before it gives up.",
    "sub/page.md": "# Quokka handshake\n\nThe quokka handshake signs every response with a "
    "rotating key.",
    "shelf/a.md": "# Pangolin ledger\n\nThe pangolin ledger records every deployment.",
    "shelf2/b.md": "# Axolotl cache\n\nThe axolotl cache keeps answers for ten minutes.",
}
SECRET = "The vault password is zebra-crossing-42."
ANSWERABLE = "How many times does the marmalade protocol retry a failed request?"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with running_fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs root: four pages, and a link planted next to them to a secret outside it."""
    folder = tmp_path_factory.mktemp("rag-attacks")
    (folder / "secret.txt").write_text(SECRET)
    root = folder / "docs"
    for name, text in PAGES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "shelf" / "notes.txt").symlink_to(folder / "secret.txt")
    return root


@pytest.fixture(scope="module")
def served(upstream: FakeUpstream, docs: Path) -> Iterator[tuple[Rag, dict[str, Any]]]:
    """`kit serve rag` over the docs root, with three keys, once it has ingested the root;
    yields the service and that first ingestion's report."""
    env = {
        "KIT_DOCS_ROOT": str(docs),
        "GATEWAY_URL": upstream.base_url.removesuffix("/v1"),  # the fake model, as the gateway
        "GATEWAY_API_KEY": "sk-unused-by-the-fake",
        "RAG_QUERY_LOG": "off",
    }
    keys = {"asker": [], "ops": ["--admin"], "leaked": []}
    folder = docs.parent / "service"
    with serve_rag(folder, env, keys, ready="/healthz") as service:
        # Qdrant local mode lets one process open the index: ingest through the service itself.
        job = service.finished_job("ops", service.ingest("ops", ".").json()["id"])
        assert job["status"] == "done", job
        yield service, job["report"]


@pytest.fixture(scope="module")
def rag(served: tuple[Rag, dict[str, Any]]) -> Rag:
    return served[0]


def chunk_ids(rag: Rag, doc_id: str) -> set[str]:
    """The chunk ids stored for `doc_id`, as a caller with a key can list them."""
    response = rag.ask("asker", doc_id, filters={"doc_id": doc_id}, k=50, include_contexts=True)
    assert response.status_code == 200, response.text
    return {context["chunk_id"] for context in response.json()["contexts"]}


def run_job(rag: Rag, *paths: str, prune: bool = False) -> dict[str, Any]:
    started = rag.ingest("ops", *paths, prune=prune)
    assert started.status_code == 202, started.text
    return rag.finished_job("ops", started.json()["id"])


# --- Finding 2: who may call --------------------------------------------------------------------


def test_without_a_key_ask_and_ingest_are_refused(rag: Rag) -> None:
    asked = rag.ask(None, ANSWERABLE, include_contexts=True)
    ingested = rag.ingest(None, ".", prune=True)
    polled = httpx.get(f"{rag.url}/ingest/anything", timeout=10)

    for response in (asked, ingested, polled):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "authentication_error"
        assert "marmalade" not in response.text


def test_an_ask_only_key_cannot_ingest(rag: Rag) -> None:
    refused = rag.ingest("asker", ".", prune=True)

    assert refused.status_code == 403
    assert "'ingest' scope" in refused.json()["error"]["message"]


def test_a_revoked_key_is_refused_within_seconds_without_a_restart(rag: Rag) -> None:
    before = rag.ask("leaked", ANSWERABLE)
    revoked = rag.kit("rag", "keys", "revoke", "leaked")
    revoked_at = time.monotonic()
    while (after := rag.ask("leaked", ANSWERABLE)).status_code != 401:
        assert time.monotonic() - revoked_at < 5, "the revoked key still works after 5 s"
        time.sleep(0.1)

    assert before.status_code == 200 and revoked.returncode == 0, revoked.stderr
    assert after.json()["error"]["code"] == "invalid_api_key"
    assert rag.ask("asker", ANSWERABLE).status_code == 200  # other keys are untouched


def test_a_second_ingest_while_one_runs_is_refused_with_the_running_jobs_id(
    rag: Rag, docs: Path
) -> None:
    for n in range(60):  # new pages, so the first job spends seconds embedding
        page = docs / "bulk" / f"page-{n:02}.md"
        page.parent.mkdir(exist_ok=True)
        page.write_text(f"# Bulk page {n}\n\n" + f"Paragraph {n} about nothing much. " * 60)

    first = rag.ingest("ops", "bulk")
    second = rag.ingest("ops", "bulk")
    job = rag.finished_job("ops", first.json()["id"])

    assert first.status_code == 202
    assert second.status_code == 409, second.text
    assert first.json()["id"] in second.json()["error"]["message"]
    assert job["status"] == "done" and job["report"]["documents"]["added"] == 60


# --- Finding 2: document ids, prune and symlinks ------------------------------------------------


def test_ingesting_a_subfolder_neither_overwrites_nor_prunes_another_document(rag: Rag) -> None:
    before = {doc: chunk_ids(rag, doc) for doc in ("page.md", "sub/page.md")}

    job = run_job(rag, "sub", prune=True)
    after = {doc: chunk_ids(rag, doc) for doc in ("page.md", "sub/page.md")}
    quokka = rag.ask("asker", "What does the quokka handshake sign?", include_contexts=True)

    assert job["status"] == "done", job
    assert job["report"]["documents"] == {
        "added": 0,
        "updated": 0,
        "unchanged": 1,
        "pruned": 0,
        "skipped": 0,
    }
    assert all(before.values()) and after == before  # every chunk still there, same ids
    assert quokka.json()["contexts"][0]["doc_id"] == "sub/page.md"


def test_pruning_a_folder_spares_a_sibling_that_shares_its_name_as_a_prefix(
    rag: Rag, docs: Path
) -> None:
    sibling = chunk_ids(rag, "shelf2/b.md")
    (docs / "shelf" / "a.md").unlink()

    job = run_job(rag, "shelf", prune=True)

    assert job["report"]["documents"]["pruned"] == 1  # shelf/a.md, which is gone
    assert chunk_ids(rag, "shelf/a.md") == set()
    assert sibling and chunk_ids(rag, "shelf2/b.md") == sibling


def test_a_symlink_to_a_secret_outside_the_root_is_skipped_and_never_retrievable(
    served: tuple[Rag, dict[str, Any]],
) -> None:
    rag, first = served
    again = run_job(rag, "shelf")
    searched = rag.ask("asker", "What is the vault password?", k=50, include_contexts=True)

    skip = {"source": "shelf/notes.txt", "reason": "symlink to a path outside KIT_DOCS_ROOT"}
    assert skip in first["skipped"] and skip in again["report"]["skipped"]
    assert searched.status_code == 200
    assert "zebra-crossing" not in searched.text and "vault password is" not in searched.text


# --- Finding 2: refusals -------------------------------------------------------------------------


def test_a_refusal_carries_no_chunk_text(rag: Rag, upstream: FakeUpstream) -> None:
    upstream.reset()

    refused = rag.ask("asker", "What is a good lasagna recipe?")

    body = refused.json()
    assert body["refused"] is True and upstream.calls() == 0
    assert body["contexts"] is None and body["citations"] == []
    for phrase in ("marmalade", "quokka", "axolotl", "Bulk page", "Paragraph"):
        assert phrase not in refused.text


# --- Finding 7 (RAG): no server paths, exception text or upstream bodies -----------------------


def test_citations_and_ingest_errors_show_no_server_path(
    rag: Rag, upstream: FakeUpstream, docs: Path
) -> None:
    upstream.default = ok("It retries three times [1].")

    answer = rag.ask("asker", ANSWERABLE, include_contexts=True)
    outside = rag.ingest("ops", "/etc")
    climbing = rag.ingest("ops", "../secret.txt")
    missing = rag.ingest("ops", "no-such-folder")

    assert answer.status_code == 200
    assert answer.json()["citations"][0]["source"] == "page.md"
    assert [r.status_code for r in (outside, climbing, missing)] == [400, 400, 400]
    for response in (answer, outside, climbing, missing):
        assert str(docs) not in response.text and str(docs.parent) not in response.text


def test_a_model_failure_quotes_the_request_id_not_the_upstreams_body(
    rag: Rag, upstream: FakeUpstream
) -> None:
    upstream.script(error(500, "Organization org-7Hc9xQ has exceeded its quota for key sk-pr0d"))

    failed = rag.ask("asker", ANSWERABLE)

    message = failed.json()["error"]["message"]
    assert failed.status_code == 502 and "model behind the gateway failed" in message
    assert failed.headers["x-request-id"] in message
    assert "org-7Hc9xQ" not in failed.text and "sk-pr0d" not in failed.text
    assert "org-7Hc9xQ" in rag.log.read_text()  # the operator still learns what happened


def test_readyz_without_qdrant_names_neither_its_address_nor_the_exception(
    tmp_path: Path, upstream: FakeUpstream, docs: Path
) -> None:
    qdrant = f"127.0.0.1:{free_port()}"  # nothing listens: connection refused
    env = {
        "KIT_DOCS_ROOT": str(docs),
        "QDRANT_URL": f"http://{qdrant}",
        "KIT_QDRANT_TIMEOUT_S": "2",
        "GATEWAY_URL": upstream.base_url.removesuffix("/v1"),
        "RAG_QUERY_LOG": "off",
    }
    with serve_rag(tmp_path, env, {"asker": []}, ready="/healthz") as down:
        readyz = httpx.get(f"{down.url}/readyz", timeout=30)  # a probe: no key
        asked = down.ask("asker", ANSWERABLE)
        log = down.log.read_text()

    reason = readyz.json()["reason"]
    assert readyz.status_code == 503 and "Qdrant is unreachable" in reason
    assert readyz.headers["x-request-id"] in reason
    assert asked.status_code == 503
    for response in (readyz, asked):
        assert qdrant not in response.text
        assert "Errno" not in response.text and "ConnectError" not in response.text
    assert qdrant in log  # the details are in the log, under the same request id
