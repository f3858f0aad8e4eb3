"""`kit serve gateway` as an operator runs it, for attack tests: a process on 127.0.0.1 with its
own data folder, models file and keys (made with `kit gateway keys create`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.servers import create_gateway_key, kit_service

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
    gateway = Gateway("", folder / "gateway.log", environment)
    for key_id, options in keys.items():
        gateway.create_key(key_id, *options)
    with kit_service(
        KIT, "gateway", environment, gateway.log, cwd=REPO, timeout=ready_timeout
    ) as served:
        gateway.url = served.url
        yield gateway
