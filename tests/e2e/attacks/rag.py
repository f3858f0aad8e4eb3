"""`kit serve rag` as an operator runs it, for attack tests: a process on 127.0.0.1 with its own
data folder, docs root (KIT_DOCS_ROOT) and keys (made with `kit rag keys create`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.attacks.gateway import KIT, REPO, kit_environment
from tests.support.servers import create_rag_key, kit_service


@dataclass
class Rag:
    url: str
    log: Path
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)  # key id -> key

    def headers(self, key_id: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[key_id]}"} if key_id else {}

    def ask(self, key_id: str | None, question: str, **options: Any) -> httpx.Response:
        body = {"question": question, **options}
        return httpx.post(f"{self.url}/ask", json=body, headers=self.headers(key_id), timeout=60)

    def ingest(self, key_id: str | None, *paths: str, prune: bool = False) -> httpx.Response:
        body = {"paths": list(paths), "prune": prune}
        return httpx.post(f"{self.url}/ingest", json=body, headers=self.headers(key_id), timeout=30)

    def finished_job(self, key_id: str, job_id: str, timeout: float = 300) -> dict[str, Any]:
        """Poll GET /ingest/{id} until the job is done or failed."""
        deadline = time.monotonic() + timeout
        while True:
            response = httpx.get(
                f"{self.url}/ingest/{job_id}", headers=self.headers(key_id), timeout=10
            )
            job: dict[str, Any] = response.json()
            if job.get("status") not in ("queued", "running"):
                return job
            assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
            time.sleep(0.2)

    def create_key(self, key_id: str, *options: str) -> str:
        """`kit rag keys create` into this service's keys file (while it runs, too)."""
        self.keys[key_id] = create_rag_key(KIT, self.env, REPO, "--id", key_id, *options)
        return self.keys[key_id]

    def kit(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another `kit` command with this service's settings (`kit rag keys revoke ...`)."""
        return subprocess.run(
            [KIT, *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=300
        )


@contextmanager
def serve_rag(
    folder: Path,
    env: dict[str, str],
    keys: dict[str, list[str]],
    *,
    ready: str = "/readyz",
    timeout: float = 180.0,
) -> Iterator[Rag]:
    """Start `kit serve rag` with `env` on top of a clean environment (state in `folder`) and one
    key per entry of `keys` (id -> options for `kit rag keys create`); wait until `ready` answers
    200; stop it when the block ends. Its output goes to `rag.log`."""
    folder.mkdir(parents=True, exist_ok=True)
    env = kit_environment(folder) | env
    rag = Rag("", folder / "rag.log", env)
    for key_id, options in keys.items():
        rag.create_key(key_id, *options)
    with kit_service(KIT, "rag", env, rag.log, cwd=REPO, ready=ready, timeout=timeout) as served:
        rag.url = served.url
        yield rag
