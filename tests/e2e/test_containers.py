"""The kit's images, built from deploy/docker/Dockerfile and run for real on this host's network.

Every image of the project is built (gateway, gateway without a model engine, rag, pipelines),
then: the gateway container answers a chat completion from the shipped model; the pipelines image
ingests documents into a volume; the rag container serves `/ask` from that volume with citations,
writing its answers through the gateway container. Containers use `--network host` and listen on
127.0.0.1: the machines the kit is tested on have no bridge network and reach no image registry
(the base image is built from Debian packages, tests/support/local-base-image.sh).
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.containers import (
    base_image,
    build_image,
    build_wheelhouse,
    docker_client,
    serving_folder,
)
from tests.support.servers import create_gateway_key, create_rag_key, free_port

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]
KIT_USER = "10001:10001"
# image name: (Dockerfile target, extras)
IMAGES = {
    "gateway": ("gateway", "gateway,llamacpp"),
    "gateway-cloud": ("gateway", "gateway"),
    "rag": ("rag", "rag"),
    "pipelines": ("pipelines", "all"),
}
# Slow tier, run by `make test-all` only: builds the kit's images and runs them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def docker() -> Any:
    return docker_client()


@pytest.fixture(scope="module")
def images(docker: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = base_image(docker)
    wheels = build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    with serving_folder(wheels) as find_links:
        return {
            name: build_image(
                docker, target, extras, f"ai-engineering-kit/{name}:test", base, find_links
            )
            for name, (target, extras) in IMAGES.items()
        }


def run_once(docker: Any, image: Any, *command: str, **options: Any) -> str:
    """Run `command` in a fresh container of `image`, read-only but for /tmp and its volumes, as
    docker-compose.yml runs jobs, and return its output."""
    output: bytes = docker.containers.run(
        image,
        list(command),
        network_mode="host",
        remove=True,
        read_only=True,
        tmpfs={"/tmp": ""},
        **options,
    )
    return output.decode().strip()


def wait_for(check: Callable[[], bool], seconds: float, container: Any) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except (httpx.TransportError, KeyError):
            pass
        container.reload()
        if container.status == "exited" or time.monotonic() > deadline:
            logs = container.logs().decode()[-3000:]
            raise AssertionError(f"not true within {seconds} s ({container.status})\n{logs}")
        time.sleep(0.5)


def health(container: Any) -> str:
    container.reload()
    status: str = container.attrs["State"]["Health"]["Status"]
    return status


def start_service(
    docker: Any, image: Any, environment: dict[str, str], volumes: dict[str, Any]
) -> Any:
    """A service container as docker-compose.yml and deploy/k8s run it: nothing but /tmp and
    its volumes writable; health checked every second (Docker merges these timings into the
    image's HEALTHCHECK, keeping its command) so the test sees the status change quickly."""
    return docker.containers.run(
        image,
        detach=True,
        network_mode="host",
        environment=environment,
        volumes=volumes,
        read_only=True,
        tmpfs={"/tmp": ""},
        healthcheck={"interval": 1_000_000_000, "start_period": 60_000_000_000, "retries": 3},
        name=f"kit-test-{uuid.uuid4().hex[:12]}",
    )


@pytest.fixture(scope="module")
def gateway(
    docker: Any, images: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Any]]:
    """The gateway container on a free loopback port: (URL, API key, container)."""
    state = tmp_path_factory.mktemp("gateway-state")
    env = {"PATH": str(Path(KIT).parent), "KIT_ENV": "test", "KIT_DATA_DIR": str(state)}
    key = create_gateway_key(KIT, env, REPO, "--id", "containers")
    # The keys file (hashed keys only) goes in read-only, as a secret would; the container's
    # user must be able to read it.
    secrets = tmp_path_factory.mktemp("secrets")
    shutil.copy(state / "gateway-keys.yaml", secrets / "gateway-keys.yaml")
    secrets.chmod(0o755)
    (secrets / "gateway-keys.yaml").chmod(0o644)

    port = free_port()
    container = start_service(
        docker,
        images["gateway"],
        {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_KEYS_FILE": "/run/secrets/gateway-keys.yaml",
        },
        {str(secrets): {"bind": "/run/secrets", "mode": "ro"}},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 180, container)
        yield url, key, container
    finally:
        container.remove(force=True)


def test_every_image_runs_as_the_non_root_kit_user(docker: Any, images: dict[str, Any]) -> None:
    for name, image in images.items():
        assert image.attrs["Config"]["User"] == KIT_USER, name
        assert run_once(docker, image, "id", "-u", entrypoint=[]) == "10001", name


def test_services_declare_a_health_check_and_jobs_do_not(images: dict[str, Any]) -> None:
    for name in ("gateway", "gateway-cloud", "rag"):
        check = images[name].attrs["Config"]["Healthcheck"]["Test"]
        assert check[-2:] == ["kit.cli.healthcheck", name.split("-")[0]], name
    assert images["pipelines"].attrs["Config"].get("Healthcheck") is None


def test_each_image_carries_only_the_engines_its_role_needs(
    docker: Any, images: dict[str, Any]
) -> None:
    # Installed distributions, not importable names: `mlflow-tracing` (the services' lean client
    # that sends spans to an MLflow server) installs the same `mlflow` package as full MLflow
    # (server, model flavours, registry loading), which only the batch jobs need.
    engines = ("torch", "llama-cpp-python", "litellm", "mlflow", "mlflow-tracing", "qdrant-client")
    probe = (
        "import importlib.metadata as m; "
        "print(' '.join(d.name.lower().replace('_', '-') for d in m.distributions()))"
    )
    found = {
        name: set(engines)
        & set(run_once(docker, image, "python", "-c", probe, entrypoint=[]).split())
        for name, image in images.items()
    }
    service_tracing = {"mlflow-tracing"}  # every service sends its spans (src/kit/core/tracing.py)
    assert found["gateway"] == {"llama-cpp-python", "litellm", "qdrant-client"} | service_tracing
    assert found["gateway-cloud"] == {"litellm", "qdrant-client"} | service_tracing  # no engine
    # MiniLM in-process; answers via HTTP
    assert found["rag"] == {"torch", "qdrant-client"} | service_tracing
    assert found["pipelines"] == set(engines)


def test_gateway_container_answers_from_the_local_model_and_turns_healthy(
    gateway: tuple[str, str, Any],
) -> None:
    url, key, container = gateway
    assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}

    reply = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "local",
            "messages": [{"role": "user", "content": "Name one primary colour."}],
            "max_tokens": 12,
            "temperature": 0,
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"].strip()
    assert body["usage"]["completion_tokens"] > 0

    # Built without torch: the embedding model is switched off at start-up, with the fix.
    embed = httpx.post(
        f"{url}/v1/embeddings",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "all-minilm-l6-v2", "input": ["hello"]},
        timeout=30,
    )
    assert embed.status_code == 404, embed.text
    assert "no local embedding engine installed" in embed.text

    # Its `mlflow` package is the tracing client, not the registry client that loads models: the
    # registry's intent model is switched off at start-up too, not failing on first use.
    intent = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "intent-router", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert intent.status_code == 404, intent.text
    assert "registry client is not installed" in intent.text

    # The image's HEALTHCHECK (its own command, run by the engine inside the container).
    wait_for(lambda: health(container) == "healthy", 60, container)
    assert container.exec_run(["id", "-u"]).output.decode().strip() == "10001"


def test_rag_container_cites_documents_the_pipelines_image_ingested(
    docker: Any,
    images: dict[str, Any],
    gateway: tuple[str, str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    gateway_url, key, _ = gateway
    # A key for the RAG service's caller, its hash mounted read-only as a secret would be.
    keys, secrets = tmp_path_factory.mktemp("rag-keys"), tmp_path_factory.mktemp("rag-secrets")
    env = {"PATH": str(Path(KIT).parent), "KIT_ENV": "test", "KIT_DATA_DIR": str(keys)}
    rag_key = create_rag_key(KIT, env, REPO, "--id", "containers")
    shutil.copy(keys / "rag-keys.yaml", secrets / "rag-keys.yaml")
    secrets.chmod(0o755)
    (secrets / "rag-keys.yaml").chmod(0o644)
    volume = docker.volumes.create(f"kit-test-data-{uuid.uuid4().hex[:8]}")
    state = {volume.name: {"bind": "/var/lib/kit", "mode": "rw"}}
    try:
        # A batch job: the pipelines image writes the index into the shared volume, then exits.
        docs = "data/fastapi-docs/docs/tutorial"
        report = run_once(
            docker,
            images["pipelines"],
            "ingest",
            f"{docs}/path-params.md",
            f"{docs}/query-params.md",
            f"{docs}/background-tasks.md",
            volumes=state,
        )
        assert "chunks" in report.lower(), report

        port = free_port()
        container = start_service(
            docker,
            images["rag"],
            {
                "RAG_HOST": "127.0.0.1",
                "RAG_PORT": str(port),
                "GATEWAY_URL": gateway_url,
                "GATEWAY_API_KEY": key,
                "RAG_KEYS_FILE": "/run/secrets/rag-keys.yaml",
                # A short answer: this test is about the images working together. At 256 tokens,
                # SmolLM2 on two cores shared with the other test worker passed the gateway's
                # 120 s model timeout. (The answer is greedy, so the same every run: from these
                # five passages it cites path-params.md; from three it writes code and no citation.)
                "RAG_MAX_TOKENS": "96",
            },
            state | {str(secrets): {"bind": "/run/secrets", "mode": "ro"}},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 180, container
            )
            answer = httpx.post(
                f"{url}/ask",
                headers={"Authorization": f"Bearer {rag_key}"},
                json={"question": "How do I declare a path parameter?"},
                timeout=300,  # generous: a shared CI machine may be running other jobs
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["refused"] is False, body
            assert body["citations"], body
            assert any("path-params" in citation["source"] for citation in body["citations"])
            wait_for(lambda: health(container) == "healthy", 60, container)
        finally:
            container.remove(force=True)
    finally:
        volume.remove(force=True)
