"""`kit serve gateway` as an operator runs it: create a key, start the server, call it, stop it."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import httpx

from tests.support.servers import create_gateway_key, kit_service

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]


def test_serve_gateway_answers_with_a_created_key(kit_env: dict[str, str], tmp_path: Path) -> None:
    key = create_gateway_key(KIT, kit_env, REPO, "--id", "e2e", "--rpm", "100")
    assert key.startswith("sk-kit-")
    keys_file = Path(kit_env["KIT_DATA_DIR"]) / "gateway-keys.yaml"
    assert key not in keys_file.read_text()  # only its hash is stored

    env = kit_env | {"KIT_LOG_FORMAT": "json"}
    log_path = tmp_path / "gateway.log"
    # Ready once the local models are loaded; stopped with SIGTERM, as a container runtime does.
    with kit_service(KIT, "gateway", env, log_path, cwd=REPO) as served:
        base = served.url
        answer = httpx.post(
            f"{base}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": "local",
                "max_tokens": 16,
                "messages": [
                    {"role": "system", "content": "Answer with one word."},
                    {"role": "user", "content": "What is the capital of France?"},
                ],
            },
            timeout=60,
        )
        refused = httpx.post(f"{base}/v1/chat/completions", json={"messages": []}, timeout=10)
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    code = served.process.returncode

    assert answer.status_code == 200, answer.text
    assert "Paris" in answer.json()["choices"][0]["message"]["content"]
    assert answer.headers["x-kit-deployment"] == "local-smollm2"
    assert refused.status_code == 401
    assert (
        'gateway_requests_total{alias="local",deployment="local-smollm2",status="200"} 1.0'
        in metrics
    )
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it: the exit status names the signal.
    assert code == -signal.SIGTERM
    assert "Application shutdown complete." in log_path.read_text()
    assert key not in log_path.read_text()
