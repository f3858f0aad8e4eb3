"""Render the Kubernetes overlays of deploy/k8s as a user does, for the manifest tests.

`render_overlays(folder)` copies deploy/k8s into `folder`, fills each overlay's secrets/ from
secrets.example/ (as the README tells a user to), and runs `kubectl kustomize` on it. The copy
leaves out any overlays/*/secrets/ of the developer's checkout: a test must not depend on, or
print, real secrets. No cluster is needed: kubectl's built-in kustomize (v5) renders offline.
`render_overlays(folder, pgvector=True)` first turns on the opt-in Postgres component in each
overlay the way its kustomization.yaml says: by uncommenting the lines it has for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.servers import require_tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
NAMESPACE = {"dev": "ai-kit-dev", "production": "ai-kit"}
KUBECTL_INSTALL = (
    "https://kubernetes.io/docs/tasks/tools/ (kubectl 1.27 or newer, for its built-in "
    "kustomize v5), or: brew install kubectl"
)

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Render:
    objects: list[Manifest]
    warnings: str

    def all(self, kind: str) -> list[Manifest]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
        return found[0]


def unhashed(name: str) -> str:
    """A generated ConfigMap's or Secret's name without the content hash kustomize appends."""
    return re.sub(r"-[a-z0-9]{10}$", "", name)


def kubectl() -> str:
    """kubectl with a kustomize v5 inside. Missing or too old: skip here, fail in CI."""
    path = require_tool("kubectl", KUBECTL_INSTALL)
    version = subprocess.run(
        [path, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60
    )
    client = json.loads(version.stdout or "{}")
    kustomize = client.get("kustomizeVersion", "unknown")
    if not re.match(r"v([5-9]|\d\d)\.", kustomize):
        found = client.get("clientVersion", {}).get("gitVersion", "?")
        message = (
            f"kubectl {found} has kustomize {kustomize}; the overlays need kustomize v5. "
            f"Install: {KUBECTL_INSTALL}"
        )
        if os.environ.get("CI"):  # as `require_tool` does: a skip in CI would hide a gap
            pytest.fail(message)
        pytest.skip(message)
    return path


# The lines of each overlay's kustomization.yaml that turn on Postgres with pgvector, commented
# out as shipped: the Secret's generator and the component (deploy/k8s/components/pgvector).
PGVECTOR_LINES = (
    "  # - name: postgres-secrets",
    "  #   envs: [secrets/postgres.env]",
    "# components:",
    "#   - ../../components/pgvector",
)


def enable_pgvector(kustomization: Path) -> None:
    """Uncomment the pgvector lines of an overlay's kustomization.yaml, as its comment says."""
    lines = kustomization.read_text().splitlines()
    for commented in PGVECTOR_LINES:
        assert lines.count(commented) == 1, f"{kustomization}: no line {commented.strip()!r}"
        lines[lines.index(commented)] = commented.replace("# ", "", 1)
    kustomization.write_text("\n".join(lines) + "\n")


def render_overlays(folder: Path, *, pgvector: bool = False) -> dict[str, Render]:
    """Each overlay rendered from a copy of deploy/k8s (in `folder`) with the example secrets,
    and with the pgvector component turned on if asked."""
    binary = kubectl()
    tree = folder / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets"))
    result = {}
    for overlay in OVERLAYS:
        shutil.copytree(tree / "secrets.example", tree / "overlays" / overlay / "secrets")
        if pgvector:
            enable_pgvector(tree / "overlays" / overlay / "kustomization.yaml")
        done = subprocess.run(
            [binary, "kustomize", str(tree / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"kubectl kustomize overlays/{overlay}:\n{done.stderr}"
        objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
        result[overlay] = Render(objects, done.stderr)
    return result
