"""`kit doctor` against real servers on 127.0.0.1: Redis, an MLflow tracking server, PostgreSQL
with pgvector, and a stand-in for Qdrant's health endpoint (a Qdrant server cannot run on the test
machines)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from kit.cli.doctor import Status, check_servers
from kit.core.settings import KitSettings
from kit.rag.pgvector_store import PgvectorStore
from tests.support.postgres import running_postgres
from tests.support.servers import free_port, mlflow_server, redis_server, running


def _by_name(settings: KitSettings) -> dict[str, tuple[Status, str]]:
    return {c.name: (c.status, c.detail) for c in check_servers(settings)}


def test_redis_is_reached_and_then_reported_down(settings: KitSettings, tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        configured = settings.model_copy(update={"redis_url": SecretStr(url)})
        status, detail = _by_name(configured)["redis"]
        assert (status, "answered PING") == (Status.OK, detail[-13:])

    status, detail = _by_name(configured)["redis"]  # the server has stopped
    assert status is Status.FAIL and "unreachable" in detail


def test_a_redis_password_is_never_shown(settings: KitSettings, tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        wrong = settings.model_copy(
            update={"redis_url": SecretStr(f"redis://:hunter2@127.0.0.1:{port}/0")}
        )
        _, detail = _by_name(wrong)["redis"]

    assert "hunter2" not in detail


def test_an_mlflow_tracking_server_is_reached(settings: KitSettings, tmp_path: Path) -> None:
    port = free_port()
    command, env = mlflow_server(
        port,
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--default-artifact-root",
        str(tmp_path / "artifacts"),
    )

    with running(command, port, tmp_path / "mlflow.log", timeout=120, env=env):
        configured = settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{port}"})
        status, detail = _by_name(configured)["mlflow"]

    assert status is Status.OK, detail
    assert detail.endswith("/health answered 200")


class _ReadyHandler(http.server.BaseHTTPRequestHandler):
    """Answers like Qdrant's /readyz, and only with the right api-key."""

    def do_GET(self) -> None:
        ok = self.path == "/readyz" and self.headers.get("api-key") == "qdrant-test-key"
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def qdrant_health() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReadyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_qdrant_readiness_is_probed_with_its_api_key(
    settings: KitSettings, qdrant_health: str
) -> None:
    with_key = settings.model_copy(
        update={"qdrant_url": qdrant_health, "qdrant_api_key": SecretStr("qdrant-test-key")}
    )
    without_key = settings.model_copy(update={"qdrant_url": qdrant_health})

    assert _by_name(with_key)["qdrant"][0] is Status.OK
    status, detail = _by_name(without_key)["qdrant"]
    assert status is Status.FAIL and "401" in detail


def test_postgres_is_reached_with_its_pgvector_and_then_reported_down(
    settings: KitSettings,
) -> None:
    with running_postgres() as url:
        configured = settings.model_copy(
            update={"store": "pgvector", "database_url": SecretStr(url)}
        )
        fresh_status, fresh_detail = _by_name(configured)["postgres"]
        PgvectorStore(url, "docs").close()  # opening a store enables the extension
        status, detail = _by_name(configured)["postgres"]

    assert fresh_status is Status.WARN and "not yet enabled" in fresh_detail
    assert status is Status.OK and "pgvector 0.8" in detail
    down_status, down_detail = _by_name(configured)["postgres"]  # the server has stopped
    assert down_status is Status.FAIL and "unreachable" in down_detail


def test_postgres_is_not_checked_while_the_store_is_qdrant(settings: KitSettings) -> None:
    assert "postgres" not in _by_name(settings)
    embedded = _by_name(settings.model_copy(update={"store": "pgvector"}))["postgres"]
    assert embedded[0] is Status.INFO and "starts Postgres" in embedded[1]
