"""Who may call the RAG service: a key for /ask, an admin key for /ingest, none for the probes.

The app is the real one over a real (in-memory) Qdrant with the shipped embedder; the keys file
is a real file watched by the service, so revocation is tested as an operator does it. The same
attacks run against a `kit serve rag` process in tests/e2e/attacks/test_rag_access.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from kit.llm.local_client import LocalClient
from kit.llm.scripted import ScriptedModel
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.qdrant_store import QdrantStore
from kit.rag_service.app import create_app
from kit.rag_service.auth import add_key, revoke_key
from kit.rag_service.settings import RagSettings

QUESTION = {"question": "How do I read a cookie?"}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def service(tmp_path: Path, local_client: LocalClient) -> Iterator[tuple[TestClient, Path]]:
    """The service with RAG_AUTH=keys (the default) and its keys file; yields both."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cookies.md").write_text("# Cookies\n\nRead a cookie with the Cookie parameter.")
    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([docs], store, local_client.embedder, IngestOptions(), root=docs)
    settings = RagSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "state",
        docs_root=docs,
        query_log=None,
    )
    keys_file = settings.resolved_keys_file
    add_key(keys_file, "bootstrap")  # the file exists before start-up, as in a deployment
    app = create_app(
        settings,
        llm=ScriptedModel.repeating("Use the Cookie parameter [1]."),
        store=store,
        embedder=local_client.embedder,
    )
    with TestClient(app) as client:
        yield client, keys_file


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param(bearer("sk-kit-rag-made-up"), id="unknown-key"),
        pytest.param({"authorization": "Basic dXNlcjpwYXNz"}, id="basic-auth"),
    ],
)
def test_without_a_valid_key_every_api_route_is_a_401_saying_how_to_get_one(
    service: tuple[TestClient, Path], headers: dict[str, str]
) -> None:
    client, _ = service

    responses = [
        client.post("/ask", json=QUESTION, headers=headers),
        client.post("/ingest", json={"paths": ["."]}, headers=headers),
        client.get("/ingest/some-job", headers=headers),
    ]

    for response in responses:
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        error = response.json()["error"]
        assert error["type"] == "authentication_error"
        assert "kit rag keys create" in error["message"] or "revoked" in error["message"]
        assert "Cookie parameter" not in response.text


def test_a_gateway_key_does_not_open_the_rag_service(
    service: tuple[TestClient, Path], tmp_path: Path
) -> None:
    from kit.gateway.auth import add_key as add_gateway_key

    client, _ = service
    gateway_key = add_gateway_key(
        tmp_path / "gateway-keys.yaml", "app", rpm=None, tpm=None, budget_usd=None
    )

    response = client.post("/ask", json=QUESTION, headers=bearer(gateway_key))

    assert response.status_code == 401 and "sk-kit-rag-" in response.json()["error"]["message"]


def test_an_ask_key_may_ask_but_not_ingest(service: tuple[TestClient, Path]) -> None:
    client, keys_file = service
    key = bearer(add_key(keys_file, "web-app"))
    time.sleep(1.1)  # the service looks at the file at most once a second

    asked = client.post("/ask", json=QUESTION, headers=key)
    ingesting = client.post("/ingest", json={"paths": ["."]}, headers=key)
    polling = client.get("/ingest/some-job", headers=key)

    assert asked.status_code == 200 and asked.json()["citations"][0]["doc_id"] == "cookies.md"
    for refused in (ingesting, polling):
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("permission_error", "insufficient_scope")
        assert "'ingest' scope" in error["message"] and "--admin" in error["message"]


def test_an_admin_key_may_ingest(service: tuple[TestClient, Path]) -> None:
    client, keys_file = service
    key = bearer(add_key(keys_file, "ops", admin=True))
    time.sleep(1.1)

    started = client.post("/ingest", json={"paths": ["."]}, headers=key)

    assert started.status_code == 202, started.text
    assert client.get(f"/ingest/{started.json()['id']}", headers=key).status_code == 200


def test_a_revoked_key_is_refused_within_seconds_without_a_restart(
    service: tuple[TestClient, Path],
) -> None:
    client, keys_file = service
    key = bearer(add_key(keys_file, "leaked"))
    time.sleep(1.1)
    before = client.post("/ask", json=QUESTION, headers=key)

    revoke_key(keys_file, "leaked")
    deadline = time.monotonic() + 5
    while (after := client.post("/ask", json=QUESTION, headers=key)).status_code == 200:
        assert time.monotonic() < deadline, "the revoked key still works after 5 s"
        time.sleep(0.2)

    assert before.status_code == 200
    assert after.status_code == 401


def test_probes_and_metrics_need_no_key(service: tuple[TestClient, Path]) -> None:
    client, _ = service

    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.get("/metrics").status_code == 200


def test_the_openapi_schema_declares_the_bearer_key_on_the_api_routes_only(
    service: tuple[TestClient, Path],
) -> None:
    client, _ = service

    schema = client.get("/openapi.json").json()

    assert schema["components"]["securitySchemes"]["RagKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A RAG key (`kit rag keys create --id NAME`; `--admin` adds /ingest).",
    }
    paths = schema["paths"]
    for path, method in [("/ask", "post"), ("/ingest", "post"), ("/ingest/{job_id}", "get")]:
        assert paths[path][method]["security"] == [{"RagKey": []}], path
    assert "security" not in paths["/healthz"]["get"]
    assert "security" not in paths["/readyz"]["get"]
