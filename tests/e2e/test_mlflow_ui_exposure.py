"""`kit mlflow ui` as a user runs it: exposed beyond this machine only with a password.

Whoever can write to the tracking server registers models and moves `champion`. On 0.0.0.0 the
command refuses to start without MLflow's basic-auth app; with it (run here on 127.0.0.1, since a
test must not listen on every interface), a request without credentials gets a 401 and writes
nothing.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port, running

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "correct-horse-battery-staple"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_on_every_interface_without_auth_it_refuses_at_once(kit_env: dict[str, str]) -> None:
    port = free_port()
    env = {k: v for k, v in kit_env.items() if k != "MLFLOW_AUTH_CONFIG_PATH"} | {"COLUMNS": "500"}

    started = time.monotonic()
    result = subprocess.run(
        [KIT, "mlflow", "ui", "--host", "0.0.0.0", "--port", str(port)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started

    assert result.returncode == 2, result.stdout + result.stderr
    assert "warning: MLflow on 0.0.0.0" in result.stderr
    assert "Refusing to serve MLflow on 0.0.0.0 without authentication" in result.stderr
    assert "--auth-config" in result.stderr and "MLFLOW_AUTH_ADMIN_PASSWORD" in result.stderr
    assert took < 30, f"refusing took {took:.0f}s"
    assert not listening(port)
    assert not Path(kit_env["KIT_DATA_DIR"], "mlflow.db").exists()  # nothing was started


def test_with_auth_a_request_without_credentials_gets_401(
    kit_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\n"
        "admin_username = admin\n"
    )
    env = kit_env | {
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,  # creates the admin on the first start
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    command = [KIT, "mlflow", "ui", "--port", str(port), "--auth-config", str(config)]

    with running(command, port, tmp_path / "mlflow.log", timeout=120, env=env):
        anonymous_read = httpx.get(f"{base}/experiments/search", params={"max_results": 1})
        anonymous_write = httpx.post(f"{base}/registered-models/create", json={"name": "stolen"})
        admin = httpx.get(
            f"{base}/registered-models/search", auth=("admin", ADMIN_PASSWORD), timeout=10
        )
        wrong = httpx.get(f"{base}/registered-models/search", auth=("admin", "guessed-wrong"))

    assert anonymous_read.status_code == 401
    assert anonymous_write.status_code == 401
    assert wrong.status_code == 401
    assert admin.status_code == 200, admin.text
    assert admin.json().get("registered_models", []) == []  # the anonymous write did nothing
    assert "(basic auth)" in (tmp_path / "mlflow.log").read_text()
