"""docker-compose.yml holds together: images cannot be pulled here, so this is what can be proved
offline. The schema check is in test_project_files.py; these check what a schema cannot: the
references between services, volumes, files, Dockerfile targets and the kit's settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from services.common.settings import env_names
from services.gateway.settings import GatewaySettings
from services.rag.settings import RagSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
KIT_SERVICES = {"gateway", "rag", "pipelines"}  # built from deploy/docker/Dockerfile
JOBS = {"pipelines"}  # run once with `docker compose run`, not servers


def dockerfile_healthchecks() -> dict[str, bool]:
    """Dockerfile target -> whether it declares a HEALTHCHECK."""
    stages: dict[str, bool] = {}
    current = ""
    for line in (REPO / "deploy/docker/Dockerfile").read_text().splitlines():
        if match := re.match(r"FROM \S+ AS (\S+)", line):
            current = match.group(1)
            stages[current] = False
        elif line.startswith("HEALTHCHECK") and current:
            stages[current] = not line.startswith("HEALTHCHECK NONE")
    return stages


def test_every_server_has_a_health_check_that_dependents_wait_for() -> None:
    targets = dockerfile_healthchecks()
    for name, service in SERVICES.items():
        if name in JOBS:
            continue
        own = "healthcheck" in service
        from_image = name in KIT_SERVICES and targets[service["build"]["target"]]
        assert own or from_image, f"{name} has no health check"

    for name, service in SERVICES.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert condition == {"condition": "service_healthy"}, name


def test_kit_images_build_from_the_dockerfile_targets_that_exist() -> None:
    targets = dockerfile_healthchecks()
    for name in KIT_SERVICES:
        build = SERVICES[name]["build"]
        assert build["dockerfile"] == "deploy/docker/Dockerfile"
        assert build["target"] in targets, name
        assert SERVICES[name]["image"].startswith(f"ai-engineering-kit/{name}:")


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_kits_containers_have_a_read_only_root_and_services_answer_their_compose_name() -> None:
    for name in KIT_SERVICES:
        assert SERVICES[name].get("read_only") is True, f"{name} can write its root filesystem"
        assert SERVICES[name].get("tmpfs") == ["/tmp"], name
    # Other containers call a service by its compose name; it must answer to that Host header.
    for name in KIT_SERVICES - JOBS:
        prefix = name.upper()
        hosts = SERVICES[name]["environment"][f"{prefix}_TRUSTED_HOSTS"].split(",")
        assert name in hosts and "localhost" in hosts, name


def test_named_volumes_are_declared_and_every_declared_one_is_used() -> None:
    declared = set(COMPOSE["volumes"])
    used: set[str] = set()
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                used.add(source)
    assert used == declared


def test_required_secrets_stop_compose_with_a_message_and_none_is_written_in() -> None:
    required = dict(re.findall(r"\$\{([A-Z_]+):\?([^}]+)\}", COMPOSE_TEXT))
    assert set(required) == {"GATEWAY_API_KEY", "GRAFANA_ADMIN_PASSWORD"}
    assert all(len(message.split()) >= 4 for message in required.values())  # says what to do

    secret_like = re.compile(r"(KEY|PASSWORD|TOKEN|SECRET)$")
    for name, service in SERVICES.items():
        for variable, value in (service.get("environment") or {}).items():
            if secret_like.search(variable):
                assert str(value).startswith("${"), f"{name}: {variable} is written in the file"


def test_kit_containers_are_given_only_settings_the_kit_reads() -> None:
    settings = set(env_names(GatewaySettings).values()) | set(env_names(RagSettings).values())
    providers = set(
        re.findall(r"api_key_env: ([A-Z_]+)", (REPO / "services/gateway/models.yaml").read_text())
    )
    libraries = {"MLFLOW_DISABLE_TELEMETRY"}
    for name in KIT_SERVICES:
        environment = set(SERVICES[name]["environment"])
        unknown = environment - settings - providers - libraries
        assert not unknown, f"{name}: nothing reads {sorted(unknown)}"


def test_servers_are_reached_by_service_name_on_their_ports() -> None:
    urls = {
        "QDRANT_URL": ("qdrant", 6333),
        "REDIS_URL": ("redis", 6379),
        "MLFLOW_TRACKING_URI": ("mlflow", 5000),
        "GATEWAY_URL": ("gateway", 8000),
    }
    for name in KIT_SERVICES:
        environment = SERVICES[name]["environment"]
        for variable, (host, port) in urls.items():
            if variable in environment:
                assert f"//{host}:{port}" in environment[variable], (name, variable)
                assert host in SERVICES
