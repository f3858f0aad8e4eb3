"""The kit as a user runs it: the installed `kit` command and `make demo`, in subprocesses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KIT = str(Path(sys.executable).with_name("kit"))


def kit(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KIT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_kit_help_lists_the_command_groups(kit_env: dict[str, str]) -> None:
    result = kit("--help", env=kit_env)

    assert result.returncode == 0, result.stderr
    assert "doctor" in result.stdout and "models" in result.stdout


def test_kit_doctor_passes_on_the_embedded_defaults(kit_env: dict[str, str]) -> None:
    result = kit("doctor", "--json", env=kit_env)

    assert result.returncode == 0, result.stdout + result.stderr
    checks = {(c["area"], c["name"]): c for c in json.loads(result.stdout)}
    assert {c["status"] for c in checks.values()} <= {"ok", "info", "warn"}
    answered = checks[("models", "load + answer (smollm2-135m-instruct)")]
    assert answered["status"] == "ok" and "llama_cpp" in answered["detail"]
    assert checks[("models", "load + embed (all-minilm-l6-v2)")]["detail"].startswith("384-d")


def test_kit_doctor_fails_on_an_unreachable_server(kit_env: dict[str, str]) -> None:
    env = kit_env | {"REDIS_URL": "redis://127.0.0.1:1/0", "KIT_PROBE_TIMEOUT_S": "0.5"}

    result = kit("doctor", "--no-load", env=env)

    assert result.returncode == 1
    assert "unreachable" in result.stdout and "not ready" in result.stdout


def test_kit_models_chat_answers_with_the_local_model(kit_env: dict[str, str]) -> None:
    result = kit(
        "models",
        "chat",
        "--system",
        "Answer with one word.",
        "What is the capital of France?",
        env=kit_env,
    )

    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "tokens/s" in result.stdout


def test_kit_models_embed_prints_vectors_as_json(kit_env: dict[str, str]) -> None:
    result = kit("models", "embed", "--json", "first text", "second text", env=kit_env)

    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == "all-minilm-l6-v2"
    assert [len(v) for v in payload["vectors"]] == [384, 384]


@pytest.mark.slow  # `make test-all` only: the whole demo, including a fine-tune
@pytest.mark.timeout(1500)  # ingesting the docs alone takes a minute or two
def test_make_demo_runs_end_to_end(kit_env: dict[str, str]) -> None:
    make = shutil.which("make")
    assert make is not None, "make is part of the kit's set-up"

    result = subprocess.run(
        [make, "--no-print-directory", "demo"],
        env=kit_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1400,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ready: 0 failed" in result.stdout
    assert "cosine similarity" in result.stdout
    assert "tokens/s" in result.stdout
    assert "via embedded gateway" in result.stdout  # a chat through the gateway
    assert "'added': 125" in result.stdout  # the FastAPI docs ingested
    assert "hybrid" in result.stdout and "support" in result.stdout  # evaluated, then asked
    assert "registered intent-router v1 as champion" in result.stdout  # fine-tuned, promoted
    assert re.search(r"^[a-z_]+\tI still have not received my new card$", result.stdout, re.M)


def test_kit_finetune_refuses_a_bad_config_and_predict_needs_a_model(
    kit_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmethod: classifier\ntrain: {epochs: -1}\n")

    wide = kit_env | {"COLUMNS": "200"}  # keep messages on one line
    refused = kit("finetune", "--config", str(bad), env=wide)
    untrained = kit("predict", "my card is lost", env=wide)

    assert refused.returncode != 0
    assert "train.epochs" in refused.stderr + refused.stdout
    assert untrained.returncode != 0
    assert "kit finetune" in untrained.stderr + untrained.stdout


def test_kit_mlflow_ui_serves_the_local_store(kit_env: dict[str, str]) -> None:
    import socket
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [KIT, "mlflow", "ui", "--port", str(port)],
        env=kit_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                experiments = httpx.get(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                    params={"max_results": 10},
                    timeout=5,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the MLflow UI never answered"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert health.status_code == 200
    assert experiments.status_code == 200
    assert Path(kit_env["KIT_DATA_DIR"], "mlflow.db").exists()  # the kit's own store
