"""The servers of docker-compose.yml, configured as compose configures them, refuse anonymous
clients and let the kit's containers in with the logins compose gives them.

Images cannot be pulled here, so the same programs run as processes on 127.0.0.1: a real
`redis-server` started with the arguments of compose's `command:` (its ACL users included), and a
real `mlflow server` with compose's command, environment and deploy/mlflow/basic_auth.ini. Only
what must differ outside a container changes: host, port and the folder state is kept in.
(The Redis here is Debian's 7.0, compose's image 8.10: ACL rules and AUTH are the same since 6.0.)
Qdrant's API key cannot be tried this way (no Qdrant server runs here): tests/unit/test_compose.py
checks its wiring, and tests/integration/test_doctor_servers.py the key's header.
"""

from __future__ import annotations

import configparser
import json
import re
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from kit.gateway.auth import ApiKey, hash_key
from kit.llm.local_client import LocalClient
from tests.integration.gateway_helpers import AUTH, KEY, chat_body, gateway_app
from tests.support.fake_openai import FakeUpstream
from tests.support.servers import free_port, mlflow_server, require_tool, running

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
REDIS_INSTALL = "apt-get install redis-server (or brew install redis)"


def interpolated(value: str, **values: str) -> str:
    """A compose value with ${NAME:?message} replaced by values[NAME], as compose does."""
    return re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: values[m.group(1)], str(value))


# --- Redis -----------------------------------------------------------------------------------


class ComposeRedis:
    """redis-server with compose's arguments, on a free loopback port."""

    def __init__(self, folder: Path) -> None:
        self.password = secrets.token_urlsafe(32)  # what `make compose-secrets` writes
        self.port = free_port()
        arguments = [interpolated(a, REDIS_PASSWORD=self.password) for a in redis_command()[1:]]
        binary = require_tool("redis-server", REDIS_INSTALL)
        self.command = [binary, *arguments, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.command += ["--dir", str(folder)]

    def url(self, password: str | None = None) -> str:
        """The gateway's REDIS_URL from compose, pointed at this server."""
        template = SERVICES["gateway"]["environment"]["REDIS_URL"]
        url = interpolated(template, REDIS_PASSWORD=password or self.password)
        return url.replace("@redis:6379/", f"@127.0.0.1:{self.port}/")


def redis_command() -> list[str]:
    command: list[str] = SERVICES["redis"]["command"]
    assert command[0] == "redis-server"
    return command


@pytest.fixture
def compose_redis(tmp_path: Path) -> Iterator[ComposeRedis]:
    server = ComposeRedis(tmp_path)
    with running(server.command, server.port, tmp_path / "redis.log"):
        yield server


def raw_reply(port: int, command: bytes) -> bytes:
    """Redis's answer to one command from a client that has not logged in."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(command)
        return connection.recv(200)


def test_redis_refuses_a_client_that_has_not_logged_in(compose_redis: ComposeRedis) -> None:
    port = compose_redis.port
    assert raw_reply(port, b"PING\r\n").startswith(b"-NOAUTH")
    assert raw_reply(port, b"GET kit-budget:team-a\r\n").startswith(b"-NOAUTH")
    # The client libraries see the same: no password, or a wrong one, gets nothing.
    anonymous = f"redis://127.0.0.1:{port}/0"
    for url in (anonymous, compose_redis.url(password="not-the-password")):
        with redis.Redis.from_url(url) as client, pytest.raises(redis.AuthenticationError):
            client.ping()


def test_the_kit_user_may_use_data_and_scripts_but_no_administrative_command(
    compose_redis: ComposeRedis,
) -> None:
    with redis.Redis.from_url(compose_redis.url()) as client:
        assert client.ping() is True
        assert client.set("kit-test", "1") and client.get("kit-test") == b"1"
        assert client.eval("return 1", 0) == 1  # the rate limiter's Lua scripts
        for command in (("CONFIG", "SET", "requirepass", ""), ("FLUSHALL",), ("KEYS", "*")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)


def test_composes_health_check_needs_the_password(compose_redis: ComposeRedis) -> None:
    require_tool("redis-cli", REDIS_INSTALL)
    kind, check = SERVICES["redis"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    here = check.replace("redis-cli ", f"redis-cli -p {compose_redis.port} ")

    def exit_status(password: str) -> int:
        return subprocess.run(["sh", "-c", here], env={"REDISCLI_AUTH": password}).returncode

    assert exit_status(compose_redis.password) == 0
    assert exit_status("not-the-password") != 0  # redis-cli itself would have exited 0


def test_the_gateway_reads_redis_url_from_a_file_and_shares_limits_through_it(
    compose_redis: ComposeRedis,
    tmp_path: Path,
    upstream: FakeUpstream,
    local_client: LocalClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """REDIS_URL_FILE, as a Docker or Kubernetes secret is mounted: two gateway replicas share a
    rate limit through the password-protected Redis, and the password appears in no log line."""
    secret = tmp_path / "redis_url"
    secret.write_text(compose_redis.url() + "\n")
    monkeypatch.setenv("REDIS_URL_FILE", str(secret))
    limited = ApiKey(id="team-a", sha256=hash_key(KEY), rpm=2)

    def replica(name: str) -> Any:
        return gateway_app(tmp_path / name, upstream, local_client, key=limited, log_format="json")

    with TestClient(replica("one")) as first, TestClient(replica("two")) as second:
        ready = second.get("/readyz").json()
        statuses = [
            first.post("/v1/chat/completions", json=chat_body("1"), headers=AUTH).status_code,
            second.post("/v1/chat/completions", json=chat_body("2"), headers=AUTH).status_code,
            first.post("/v1/chat/completions", json=chat_body("3"), headers=AUTH).status_code,
        ]
    logs = capsys.readouterr().err

    assert ready["checks"]["redis"] == "ready"
    assert statuses == [200, 200, 429]  # the third request is over the shared limit of 2
    assert '"event": "gateway_started"' in logs
    assert compose_redis.password not in logs


def test_a_wrong_redis_password_leaves_the_gateway_degraded_not_down(
    compose_redis: ComposeRedis,
    tmp_path: Path,
    upstream: FakeUpstream,
    local_client: LocalClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(16)
    app = gateway_app(
        tmp_path, upstream, local_client, redis_url=compose_redis.url(wrong), log_format="json"
    )
    with TestClient(app) as client:
        answered = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
        ready = client.get("/readyz").json()
    logs = capsys.readouterr().err

    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    assert answered.status_code == 200  # served from memory, as during a Redis outage
    assert ready["checks"]["redis"] == "degraded"
    assert events["redis_degraded"]["reason"].startswith("AuthenticationError")  # says why
    assert wrong not in logs and wrong not in json.dumps(ready)


# --- MLflow ----------------------------------------------------------------------------------


class ComposeMlflow:
    """`mlflow server` with compose's command, environment and auth config, on loopback."""

    def __init__(self, folder: Path) -> None:
        self.admin_password = secrets.token_urlsafe(32)
        self.port = free_port()
        service = SERVICES["mlflow"]
        state = service_volume_target(service, "mlflow-data")  # /mlflow in the container
        values = {
            "MLFLOW_ADMIN_PASSWORD": self.admin_password,
            "MLFLOW_FLASK_SECRET_KEY": secrets.token_urlsafe(32),
        }
        environment = {k: interpolated(v, **values) for k, v in service["environment"].items()}
        # deploy/mlflow/basic_auth.ini with its user store moved from the volume to `folder`.
        config = folder / "basic_auth.ini"
        mounted = service_volume_source(service, environment["MLFLOW_AUTH_CONFIG_PATH"])
        config.write_text((REPO / mounted).read_text().replace(state, str(folder)))
        environment["MLFLOW_AUTH_CONFIG_PATH"] = str(config)

        command: list[str] = [
            argument.replace(state, str(folder)).replace(":5000", f":{self.port}")
            for argument in service["command"][2:]  # after `mlflow server`
            if not argument.startswith(("--host=", "--port=", "--workers="))
        ]
        # mlflow_server() adds host 127.0.0.1, the port and one worker, as compose has.
        assert "--workers=1" in service["command"]
        self.command, env = mlflow_server(self.port, *self._backend(command))
        self.env = env | environment
        self.url = f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _backend(command: list[str]) -> list[str]:
        """(backend URI, other options) from compose's options, for `mlflow_server`."""
        backend = next(a for a in command if a.startswith("--backend-store-uri="))
        return [backend.split("=", 1)[1], *[a for a in command if a != backend]]


def service_volume_target(service: dict[str, Any], volume: str) -> str:
    target: str = next(v.split(":")[1] for v in service["volumes"] if v.startswith(f"{volume}:"))
    return target


def service_volume_source(service: dict[str, Any], target: str) -> str:
    source: str = next(v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == target)
    return source


@pytest.fixture(scope="module")
def compose_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeMlflow]:
    folder = tmp_path_factory.mktemp("mlflow")
    server = ComposeMlflow(folder)
    with running(server.command, server.port, folder / "mlflow.log", timeout=120, env=server.env):
        yield server


def kit_login(service: str, server: ComposeMlflow) -> dict[str, str]:
    """The MLflow login compose gives a kit container, with the admin password filled in."""
    environment = SERVICES[service]["environment"]
    return {
        name: interpolated(environment[name], MLFLOW_ADMIN_PASSWORD=server.admin_password)
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    }


def test_mlflow_refuses_anonymous_clients_and_answers_health_checks(
    compose_mlflow: ComposeMlflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    anonymous = MlflowClient(compose_mlflow.url)

    with pytest.raises(MlflowException) as experiment:
        anonymous.create_experiment("anonymous")
    with pytest.raises(MlflowException) as model:
        anonymous.create_registered_model("intent-router-anonymous")
    # compose's health check (GET /health) needs no login, and the UI does.
    health = httpx.get(f"{compose_mlflow.url}/health")
    ui = httpx.get(compose_mlflow.url)

    assert experiment.value.get_http_status_code() == 401
    assert model.value.get_http_status_code() == 401
    assert (health.status_code, health.text) == (200, "OK")
    assert ui.status_code == 401


def test_mlflow_answers_the_kits_containers_by_name_and_refuses_other_host_names(
    compose_mlflow: ComposeMlflow,
) -> None:
    """The kit's containers call it as http://mlflow:5000; a web page that rebinds its own
    domain to 127.0.0.1 (DNS rebinding) sends its own name and gets 403 before any login."""
    login = kit_login("gateway", compose_mlflow)
    auth = (login["MLFLOW_TRACKING_USERNAME"], login["MLFLOW_TRACKING_PASSWORD"])
    search = f"{compose_mlflow.url}/api/2.0/mlflow/experiments/search?max_results=1"

    def status(host: str) -> int:
        return httpx.get(search, auth=auth, headers={"host": host}).status_code

    assert status(f"mlflow:{compose_mlflow.port}") == 200
    assert status(f"localhost:{compose_mlflow.port}") == 200
    assert status(f"attacker.example:{compose_mlflow.port}") == 403


def test_the_gateway_and_pipelines_log_in_with_the_login_compose_gives_them(
    compose_mlflow: ComposeMlflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    for service in ("pipelines", "gateway"):
        for name, value in kit_login(service, compose_mlflow).items():
            monkeypatch.setenv(name, value)  # MLflow's client reads them from the environment
        client = MlflowClient(compose_mlflow.url)
        experiment = client.create_experiment(f"from-{service}")
        model = client.create_registered_model(f"intent-router-{service}")
        assert client.get_experiment(experiment).name == f"from-{service}"
        assert client.get_registered_model(model.name).name == f"intent-router-{service}"

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-admin-password")
    with pytest.raises(MlflowException) as wrong:
        MlflowClient(compose_mlflow.url).search_experiments()
    assert wrong.value.get_http_status_code() == 401


def test_mlflow_keeps_its_users_on_the_volume_and_no_password_in_the_config(
    compose_mlflow: ComposeMlflow,
) -> None:
    config = configparser.ConfigParser()
    config.read(compose_mlflow.env["MLFLOW_AUTH_CONFIG_PATH"])
    store = Path(config["mlflow"]["database_uri"].removeprefix("sqlite:///"))

    assert store.is_file(), "the user store is where compose's volume is"
    assert compose_mlflow.admin_password.encode() not in store.read_bytes()  # a hash only
