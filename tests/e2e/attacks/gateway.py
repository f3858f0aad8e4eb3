"""`kit serve gateway` as an operator runs it, for attack tests: a process on 127.0.0.1 with its
own data folder, models file and keys (made with `kit gateway keys create`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.servers import create_gateway_key, free_port

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[3]
_KIT_PREFIXES = ("KIT_", "GATEWAY_", "RAG_", "QDRANT_", "REDIS_", "MLFLOW_TRACKING")


def kit_environment(folder: Path, **extra: str) -> dict[str, str]:
    """This process's environment without the developer's kit settings, state in `folder`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_KIT_PREFIXES)}
    return (
        env
        | {
            "KIT_ENV": "test",
            "KIT_DATA_DIR": str(folder / "data"),
            "KIT_CACHE_DIR": str(folder / "cache"),
            "KIT_LOG_FORMAT": "json",
        }
        | extra
    )


@dataclass
class Gateway:
    url: str
    log: Path
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)  # key id -> key

    def chat(self, key_id: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        auth = {"authorization": f"Bearer {self.keys[key_id]}"} | headers
        return httpx.post(f"{self.url}/v1/chat/completions", json=body, headers=auth, timeout=60)

    def create_key(self, key_id: str, *options: str) -> str:
        """`kit gateway keys create` into this gateway's keys file (while it runs, too)."""
        self.keys[key_id] = create_gateway_key(KIT, self.env, REPO, "--id", key_id, *options)
        return self.keys[key_id]


@contextmanager
def serve_gateway(
    folder: Path,
    models: dict[str, Any],
    keys: dict[str, list[str]],
    *,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
) -> Iterator[Gateway]:
    """Start `kit serve gateway` with `models` and one key per entry of `keys` (id -> options for
    `kit gateway keys create`); stop it when the block ends. Its output goes to `gateway.log`."""
    folder.mkdir(parents=True, exist_ok=True)
    models_file = folder / "models.yaml"
    models_file.write_text(yaml.safe_dump(models))
    environment = kit_environment(folder, GATEWAY_MODELS_FILE=str(models_file)) | (env or {})
    port = free_port()
    gateway = Gateway(f"http://127.0.0.1:{port}", folder / "gateway.log", environment)
    for key_id, options in keys.items():
        gateway.create_key(key_id, *options)
    with gateway.log.open("wb") as log:
        process = subprocess.Popen(
            [KIT, "serve", "gateway", "--port", str(port)],
            env=environment,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if httpx.get(f"{gateway.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, f"the gateway exited:\n{gateway.log.read_text()}"
            assert time.monotonic() < deadline, f"not ready:\n{gateway.log.read_text()}"
            time.sleep(0.2)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
