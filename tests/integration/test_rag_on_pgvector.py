"""The RAG service on Postgres + pgvector: KIT_STORE=pgvector and DATABASE_URL are what it takes.

The app opens its store from the settings as `kit serve rag` does (no store handed in), over a
real PostgreSQL server; POST /ingest fills it, /ask answers with citations from it, /readyz
counts its chunks, and a Postgres that goes away is a 503 (/readyz names it; the caller
of /ask reads only that the store is down).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kit.llm.gateway_client import GatewayClient
from kit.llm.local_client import LocalClient
from kit.rag.pgvector_store import PgvectorStore
from kit.rag_service.app import create_app
from kit.rag_service.settings import RagSettings
from kit.web.embedded import EmbeddedServer
from tests.integration.gateway_helpers import KEY, gateway_app
from tests.integration.rag_helpers import ADMIN, BACKGROUND_PAGE, rag_keys
from tests.support.fake_openai import FakeUpstream, ok


@pytest.fixture
def rag(
    tmp_path: Path, database_url: str, upstream: FakeUpstream, local_client: LocalClient
) -> Iterator[TestClient]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "background.md").write_text(BACKGROUND_PAGE)
    settings = RagSettings(
        _env_file=None,
        environment="test",
        data_dir=tmp_path / "state",  # type: ignore[call-arg]
        model="chain",
        docs_root=docs,
        store="pgvector",
        database_url=database_url,
    )
    with EmbeddedServer(gateway_app(tmp_path / "gw", upstream, local_client)) as gateway:
        llm = GatewayClient(gateway.url, api_key=KEY)
        app = create_app(settings, llm=llm, embedder=local_client.embedder, keys=rag_keys())
        with TestClient(app, headers=ADMIN) as client:
            yield client


def ingested(rag: TestClient) -> dict[str, object]:
    job = rag.post("/ingest", json={"paths": ["."]}).json()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = rag.get(f"/ingest/{job['id']}").json()
        if status["status"] in ("done", "failed"):
            return status  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"ingest job {job['id']} did not finish in 120 s")


def test_the_service_ingests_into_postgres_and_answers_from_it(
    rag: TestClient, upstream: FakeUpstream, database_url: str
) -> None:
    assert rag.get("/readyz").status_code == 503  # nothing ingested yet

    job = ingested(rag)
    upstream.default = ok("Background tasks run after the response is sent [1].")
    body = rag.post("/ask", json={"question": "When do background tasks run?"}).json()

    assert job["status"] == "done", job
    assert body["refused"] is False
    assert [c["doc_id"] for c in body["citations"]] == ["background.md"]
    ready = rag.get("/readyz").json()
    assert ready["status"] == "ready" and ready["chunks"] >= 1
    with PgvectorStore(database_url, "docs") as store:  # the chunks are in Postgres itself
        assert store.count() == ready["chunks"]
        assert set(store.chunk_ids_by_doc()) == {"background.md"}


def test_a_lost_postgres_is_a_503_that_names_it(
    rag: TestClient, database_url: str, postgres_server: str
) -> None:
    import psycopg

    ingested(rag)
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(postgres_server, autocommit=True) as admin:  # cut every connection
        admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,)
        )
    try:
        asked = rag.post("/ask", json={"question": "When do background tasks run?"})
        ready = rag.get("/readyz")
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true')

    assert asked.status_code == 503
    message = asked.json()["error"]["message"]
    assert "store where the documents are indexed is unreachable" in message
    # The pool waits up to 10 s for a connection; the probe gives up after 2 s: either way,
    # the reason names the server to look at.
    assert ready.status_code == 503 and ready.json()["reason"].startswith("Postgres ")
