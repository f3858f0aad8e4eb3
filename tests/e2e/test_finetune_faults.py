"""`kit finetune` under faults, run as a user runs it: the tracking server going away mid-training,
and the job itself killed mid-training. Neither loses a run silently or leaves the registry
half-done.

Both run the `quick` config and act once the first training loss is in the tracking store
(step 5 of 40), read straight from its sqlite file while the job writes it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.servers import free_port, mlflow_server, running

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]
QUICK = "pipelines/finetune/configs/quick.yaml"
# Slow tier, run by `make test-all` only: trains twice, killing the server and the job.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def logged_losses(store: Path) -> int:
    """train_loss values in an MLflow sqlite store (sqlite lets a second process read)."""
    if not store.exists():
        return 0
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
        try:
            query = "SELECT count(*) FROM metrics WHERE key = 'train_loss'"
            return int(db.execute(query).fetchone()[0])
        except sqlite3.OperationalError:  # the tables are being created
            return 0


def wait_until(condition: Callable[[], bool], job: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 600
    while not condition():
        assert job.poll() is None, f"the job exited ({job.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within 10 minutes"
        time.sleep(0.1)


def mlflow_client(store: Path):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{store}")


def test_a_tracking_server_lost_mid_training_fails_the_job_clearly_and_keeps_its_work(
    tmp_path: Path, kit_env: dict[str, str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_store = tmp_path / "server.db"
    command, server_env = mlflow_server(
        port, f"sqlite:///{server_store}", "--artifacts-destination", str(tmp_path / "artifacts")
    )
    env = kit_env | {"MLFLOW_TRACKING_URI": url, "COLUMNS": "500"}  # one line per message
    output = tmp_path / "job.log"

    with (
        running(command, port, tmp_path / "mlflow.log", timeout=180, env=server_env) as server,
        output.open("wb") as log,
    ):
        job = subprocess.Popen(
            [KIT, "finetune", "--config", QUICK], env=env, cwd=REPO, stdout=log, stderr=log
        )
        try:
            wait_until(lambda: logged_losses(server_store) > 0, job, "training loss")
            server.terminate()  # the tracking server goes away mid-training
            server.wait(timeout=60)
            lost_at = time.monotonic()
            job.wait(timeout=600)  # MLflow's own retries would take many minutes
        finally:
            if job.poll() is None:
                job.kill()
    finished_in = time.monotonic() - lost_at
    text = " ".join(output.read_text().split())
    [saved] = (Path(kit_env["KIT_DATA_DIR"]) / "finetune-untracked").iterdir()
    local_steps = [
        line["step"]
        for line in map(json.loads, (saved / "metrics.jsonl").read_text().splitlines())
        if "train_loss" in line
    ]
    client = mlflow_client(server_store)  # the server's store, read after it went away
    [run] = client.search_runs([client.get_experiment_by_name("finetune-intent").experiment_id])
    server_steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]

    assert job.returncode == 1, text
    assert f"The MLflow tracking server at {url} is unreachable" in text
    assert "MLFLOW_TRACKING_URI" in text and "nothing was registered" in text
    assert f"saved in {saved}" in text and "Traceback" not in text
    print(f"the job failed {finished_in:.0f}s after the server went away")
    # Training went on without the server, and everything it measured is on local disk...
    assert local_steps == [5, 10, 15, 20, 25, 30, 35, 40]
    assert any((saved / "model").iterdir())
    assert json.loads((saved / "params.json").read_text())["train.max_steps"] == 40
    # ...and the run exists on the server with what reached it before the outage.
    assert saved.name == run.info.run_id and run.info.status == "RUNNING"
    assert server_steps and server_steps == local_steps[: len(server_steps)]
    assert not client.search_model_versions("name = 'intent-router'")


def test_a_job_killed_mid_training_reruns_with_nothing_duplicated_or_lost(
    tmp_path: Path, kit_env: dict[str, str]
) -> None:
    store = Path(kit_env["KIT_DATA_DIR"]) / "mlflow.db"  # the default: MLflow on sqlite
    env = kit_env | {"COLUMNS": "500"}
    job = subprocess.Popen(
        [KIT, "finetune", "--config", QUICK],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: logged_losses(store) > 0, job, "training loss")
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    client = mlflow_client(store)
    experiment = client.get_experiment_by_name("finetune-intent").experiment_id
    [left_running] = client.search_runs([experiment])

    rerun = subprocess.run(
        [KIT, "finetune", "--config", QUICK],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    killed, finished = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    versions = client.search_model_versions("name = 'intent-router'")

    assert job.returncode == -signal.SIGKILL, "the first job finished before it was killed"
    assert left_running.info.status == "RUNNING"  # a SIGKILLed process cannot end its run
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "marked KILLED" in rerun.stdout
    assert killed.info.run_id == left_running.info.run_id
    assert killed.info.status == "KILLED" and "abandoned" in killed.data.tags["error"]
    assert finished.info.status == "FINISHED"
    # One version, from the re-run, and the champion alias set once, on it.
    assert [(str(v.version), v.run_id) for v in versions] == [("1", finished.info.run_id)]
    assert client.get_registered_model("intent-router").aliases == {"champion": 1}
    assert finished.data.params["gate_decision"] == "champion"
