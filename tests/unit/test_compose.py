"""docker-compose.yml holds together: images cannot be pulled here, so this is what can be proved
offline. The schema check is in test_project_files.py; these check what a schema cannot: the
references between services, volumes, files, Dockerfile targets and the kit's settings."""

from __future__ import annotations

import configparser
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from kit.core.settings import env_names, load_settings
from kit.gateway.settings import GatewaySettings
from kit.rag_service.settings import RagSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
# The file without its comments, which show examples (the pgvector override) compose never reads.
COMPOSE_CODE = "\n".join(
    line for line in COMPOSE_TEXT.splitlines() if not line.lstrip().startswith("#")
)
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
KIT_SERVICES = {"gateway", "rag", "pipelines"}  # built from deploy/docker/Dockerfile
JOBS = {"pipelines"}  # run once with `docker compose run`, not servers
# The variables compose refuses to start without; all but the first are the servers' own
# secrets, which `make compose-secrets` generates.
REQUIRED = {
    "GATEWAY_API_KEY",
    "REDIS_PASSWORD",
    "QDRANT_API_KEY",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SECRET_KEY",
    "GRAFANA_ADMIN_PASSWORD",
}
# Compose secrets (files in /run/secrets) and the variable each is read from: only when a service
# that lists it is created, so not required by the file as a whole. `make compose-secrets` writes
# these too.
SECRET_SOURCES: dict[str, str] = {
    name: secret["environment"] for name, secret in COMPOSE.get("secrets", {}).items()
}
# The opt-in Postgres with pgvector (profile `pgvector`), the RAG store's second back end.
POSTGRES = SERVICES["postgres"]


def interpolated(value: str, **values: str) -> str:
    """A compose value with each ${NAME...} replaced by values[NAME] (default: NAME itself)."""
    return re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: values.get(m.group(1), m.group(1)), str(value))


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
    required = dict(re.findall(r"\$\{([A-Z_]+):\?([^}]+)\}", COMPOSE_CODE))
    assert set(required) == REQUIRED
    assert all(len(message.split()) >= 4 for message in required.values())  # says what to do
    # Every use is a required one: a bare ${REDIS_PASSWORD} would quietly become "" when unset.
    for name in REQUIRED | set(SECRET_SOURCES.values()):
        uses = re.findall(r"\$\{" + name + r"([^A-Z_][^}]*)?\}", COMPOSE_TEXT)
        assert all(use.startswith(":?") for use in uses), name
        assert uses or name in SECRET_SOURCES.values(), name

    secret_like = re.compile(r"(KEY|PASSWORD|TOKEN|SECRET)$")
    for name, service in SERVICES.items():
        for variable, value in (service.get("environment") or {}).items():
            if secret_like.search(variable):
                assert str(value).startswith("${"), f"{name}: {variable} is written in the file"


def test_kit_containers_are_given_only_settings_the_kit_reads() -> None:
    settings = set(env_names(GatewaySettings).values()) | set(env_names(RagSettings).values())
    providers = set(
        re.findall(r"api_key_env: ([A-Z_]+)", (REPO / "src/kit/gateway/models.yaml").read_text())
    )
    # MLflow's client reads these itself (telemetry off, its basic-auth login).
    libraries = {"MLFLOW_DISABLE_TELEMETRY", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
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
                url = urlsplit(interpolated(environment[variable]))
                assert (url.hostname, url.port) == (host, port), (name, variable)
                assert host in SERVICES


# --- The servers ask every client to log in (finding 6 of the security review) ---------------


def test_redis_refuses_clients_that_do_not_log_in_and_the_gateway_logs_in_as_kit() -> None:
    redis = SERVICES["redis"]
    command = " ".join(redis["command"])
    # The passwordless `default` user is off; `kit` has a password and no @dangerous commands.
    assert "--user default off" in command
    assert "--user kit on >${REDIS_PASSWORD:?" in command
    assert redis["command"][-1] == "-@dangerous"
    # The health check logs in as kit, its password from the environment, not from `-a`.
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?")
    check = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli --user kit ping" in check and "-a " not in check
    assert "grep -q PONG" in check  # redis-cli exits 0 on NOAUTH: only a PONG is healthy

    url = urlsplit(interpolated(SERVICES["gateway"]["environment"]["REDIS_URL"]))
    assert (url.username, url.password) == ("kit", "REDIS_PASSWORD")
    # Only the gateway uses Redis; the other containers do not get its password.
    for name in KIT_SERVICES - {"gateway"}:
        assert "REDIS_URL" not in SERVICES[name]["environment"], name


def test_qdrant_requires_an_api_key_and_every_kit_container_sends_it() -> None:
    qdrant = SERVICES["qdrant"]["environment"]
    assert qdrant["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY:?")
    for name in KIT_SERVICES:
        sent = SERVICES[name]["environment"]["QDRANT_API_KEY"]
        assert interpolated(sent) == interpolated(qdrant["QDRANT__SERVICE__API_KEY"]), name


def test_mlflow_runs_with_basic_auth_and_the_kit_logs_in_with_its_admin() -> None:
    mlflow = SERVICES["mlflow"]
    assert "--app-name=basic-auth" in mlflow["command"]
    # MLflow refuses Host headers it does not know (403): the containers' name must be listed.
    allowed = next(a for a in mlflow["command"] if a.startswith("--allowed-hosts="))
    assert "mlflow:5000" in allowed.removeprefix("--allowed-hosts=").split(",")
    environment = mlflow["environment"]
    assert environment["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    assert environment["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_FLASK_SECRET_KEY:?")

    # The auth config is the repository's file, mounted where MLFLOW_AUTH_CONFIG_PATH says.
    mounts = dict(v.split(":")[:2] for v in mlflow["volumes"])
    source = next(
        s for s, target in mounts.items() if target == environment["MLFLOW_AUTH_CONFIG_PATH"]
    )
    config = configparser.ConfigParser()
    config.read(REPO / source)
    auth = config["mlflow"]
    assert "admin_password" not in auth, "no password in a file checked into git"
    assert auth["default_permission"] == "NO_PERMISSIONS"
    # The user store is kept on the volume, next to the tracking database.
    assert auth["database_uri"].startswith(f"sqlite:///{mounts['mlflow-data']}/")

    # The containers that use MLflow log in as that admin; the RAG service never calls MLflow.
    for name in ("gateway", "pipelines"):
        login = SERVICES[name]["environment"]
        assert login["MLFLOW_TRACKING_USERNAME"] == auth["admin_username"], name
        assert interpolated(login["MLFLOW_TRACKING_PASSWORD"]) == "MLFLOW_ADMIN_PASSWORD", name
    assert "MLFLOW_TRACKING_PASSWORD" not in SERVICES["rag"]["environment"]
    # /health answers without a login (tests/integration/test_compose_servers_require_login.py).
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])


def test_the_mlflow_image_adds_the_auth_packages_the_tests_pin() -> None:
    mlflow = SERVICES["mlflow"]
    dockerfile = (REPO / mlflow["build"]["context"] / "Dockerfile").read_text()
    base = re.search(r"^FROM ghcr\.io/mlflow/mlflow:v(\S+)$", dockerfile, re.M)
    assert base is not None
    assert mlflow["image"] == f"ai-engineering-kit/mlflow:{base.group(1)}"
    pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    )
    assert pins["mlflow"] == base.group(1), "the server and the kit's client are one version"
    installed = dict(re.findall(r"\b(Flask-WTF|WTForms)==(\S+)", dockerfile))
    assert installed == {name: pins[name] for name in ("Flask-WTF", "WTForms")}
    assert re.search(r"^USER [1-9]\d*$", dockerfile, re.M), "the server runs as a non-root user"


# --- Postgres with pgvector: opt-in (profile `pgvector`), its password a compose secret ---------


def pgvector_override() -> dict[str, Any]:
    """The docker-compose.override.yml that the comment above the postgres service shows."""
    lines = COMPOSE_TEXT.splitlines()
    start = next(i for i, line in enumerate(lines) if "create docker-compose.override.yml" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].lstrip().startswith("#   3."))
    body = [line.strip().removeprefix("#") for line in lines[start + 1 : end]]
    override: dict[str, Any] = yaml.safe_load(textwrap.dedent("\n".join(body)))
    return override


def test_postgres_is_opt_in_and_the_rag_service_stays_on_qdrant() -> None:
    assert POSTGRES["profiles"] == ["pgvector"], "`docker compose up` must not start it"
    for name, service in SERVICES.items():
        if "profiles" not in service:  # what `up` starts: none of it waits for Postgres
            assert "postgres" not in service.get("depends_on", {}), name
    # The kit's containers keep the default store, Qdrant: nothing sets KIT_STORE or DATABASE_URL.
    for name in KIT_SERVICES:
        assert not {"KIT_STORE", "DATABASE_URL"} & set(SERVICES[name]["environment"]), name
    assert RagSettings.model_fields["store"].default == "qdrant"


def test_postgres_gets_its_password_from_a_compose_secret_never_a_literal() -> None:
    environment = POSTGRES["environment"]
    assert "POSTGRES_PASSWORD" not in environment, "the _FILE form: not in `docker inspect`"
    [secret] = POSTGRES["secrets"]
    assert environment["POSTGRES_PASSWORD_FILE"] == f"/run/secrets/{secret}"
    # The secret's value comes from .env (make compose-secrets), not a file or text in the repo.
    assert COMPOSE["secrets"][secret] == {"environment": "POSTGRES_PASSWORD"}
    others = [name for name, s in SERVICES.items() if secret in s.get("secrets", [])]
    assert others == ["postgres"], "only Postgres gets its password file"
    # ...and the file names the variable only as that source: no service is given it, or a URL
    # with it, by default (the RAG service only through the override below).
    assert re.findall(r"POSTGRES_PASSWORD(?!_FILE)", COMPOSE_CODE) == ["POSTGRES_PASSWORD"]


def test_postgres_image_is_pinned_and_keeps_its_data_on_the_volume_postgres_18_expects() -> None:
    pinned = re.fullmatch(r"pgvector/pgvector:(\d+\.\d+\.\d+)-pg(\d+)", POSTGRES["image"])
    assert pinned, f"{POSTGRES['image']}: pin a pgvector release and a Postgres major version"
    assert int(pinned.group(2)) >= 18
    # From 18 on, the image keeps PGDATA in /var/lib/postgresql/MAJOR/docker and refuses a
    # volume at the old /var/lib/postgresql/data.
    assert POSTGRES["volumes"] == ["postgres-data:/var/lib/postgresql"]
    assert all(port.startswith("127.0.0.1:") for port in POSTGRES.get("ports", []))


def test_postgres_health_check_asks_the_server_the_kit_connects_to() -> None:
    check = POSTGRES["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"]
    # TCP, not the socket, which the image's temporary initdb server answers on too early.
    assert "--host=127.0.0.1" in check and "--port=5432" in check
    environment = POSTGRES["environment"]
    assert f"--username={environment['POSTGRES_USER']}" in check
    assert f"--dbname={environment['POSTGRES_DB']}" in check
    assert not [arg for arg in check if "PASSWORD" in arg], "pg_isready needs no password"


def test_the_documented_override_moves_rag_and_ingest_to_postgres(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = pgvector_override()["services"]
    assert set(services) == {"rag", "pipelines"}  # the RAG service, and `kit ingest`'s job
    environment = POSTGRES["environment"]
    for name, override in services.items():
        variables = override["environment"]
        assert variables["KIT_STORE"] == "pgvector"
        assert override["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        # The password from .env, required, as the other servers' are.
        template = variables["DATABASE_URL"]
        assert re.search(r"\$\{POSTGRES_PASSWORD:\?[^}]*make compose-secrets[^}]*\}", template)
        url = urlsplit(interpolated(template, POSTGRES_PASSWORD="secret-from-env"))
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
        assert url.hostname in SERVICES
        assert (url.username, url.password) == (environment["POSTGRES_USER"], "secret-from-env")
        assert url.path == "/" + environment["POSTGRES_DB"]

        # The merged environment is one the kit accepts, and it selects Postgres.
        merged = {**SERVICES[name]["environment"], **variables}
        assert set(variables) <= set(env_names(RagSettings).values())
        with monkeypatch.context() as env:
            for variable, value in merged.items():
                if isinstance(value, str):
                    env.setenv(variable, interpolated(value))
            settings = load_settings(RagSettings, _env_file=None)
        assert settings.store == "pgvector" and settings.database_url is not None


def version(tag: str) -> tuple[int, ...]:
    """(8, 10, 2) from an image tag such as 8.10.2-alpine or v1.20.0."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", tag)
    assert match, f"{tag} is not pinned to a patch release"
    return tuple(int(part) for part in match.groups())


# Redis: CVE-2025-49844 (a use-after-free in Lua scripting: remote code execution by a client that
# may run scripts) was fixed in these releases; lines released later never had it.
REDIS_FIXED: dict[tuple[int, ...], tuple[int, ...]] = {
    (7, 2): (7, 2, 11),
    (7, 4): (7, 4, 6),
    (8, 0): (8, 0, 4),
    (8, 2): (8, 2, 2),
}
# Grafana: 12.4 is the oldest line still patched (docker-compose.yml says why), at least 12.4.11.
GRAFANA_FLOOR = (12, 4, 11)


def test_images_are_pinned_past_their_known_vulnerabilities() -> None:
    images = {name: s["image"] for name, s in SERVICES.items() if "build" not in s}
    for name, image in images.items():
        assert "@" in image or version(image.rsplit(":", 1)[1]), name  # exact, never :latest

    tag = images["redis"].removeprefix("redis:")
    assert tag.endswith("-alpine"), "the small image: fewer packages to patch"
    assert redis_problem(tag) is None, redis_problem(tag)
    grafana = version(images["grafana"].removeprefix("grafana/grafana:"))
    assert grafana >= GRAFANA_FLOOR, f"Grafana {grafana} is older than {GRAFANA_FLOOR}"


def redis_problem(tag: str) -> str | None:
    """Why a Redis image tag is not acceptable, or None."""
    found = version(tag)
    if found[:2] < (7, 2):
        return f"Redis {tag}: lines before 7.2 get no security fixes"
    if found < REDIS_FIXED.get(found[:2], found):
        return f"Redis {tag} has CVE-2025-49844 (fixed in {REDIS_FIXED[found[:2]]})"
    return None


def test_the_redis_check_refuses_the_vulnerable_releases() -> None:
    """Not vacuous: the tag compose had before, and each line's last release without the fix."""
    for vulnerable in ("7.4.1-alpine", "7.2.10", "7.4.5-alpine", "8.0.3", "8.2.1-alpine", "6.2.20"):
        assert redis_problem(vulnerable) is not None, vulnerable
    for fixed in ("7.2.11", "7.4.6-alpine", "8.0.4", "8.2.2-alpine", "8.4.0", "8.10.2-alpine"):
        assert redis_problem(fixed) is None, fixed


def test_compose_secrets_writes_each_missing_one_once_and_keeps_the_rest(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    # A set value, an empty one, a commented one, and a last line without its newline.
    env_file.write_text("REDIS_PASSWORD=kept\nGRAFANA_ADMIN_PASSWORD=\n# QDRANT_API_KEY=\nX=1")
    make = ["make", "--no-print-directory", "-f", str(REPO / "Makefile"), "-C", str(tmp_path)]

    first = subprocess.run([*make, "compose-secrets"], capture_output=True, text=True, check=True)
    written = env_file.read_text()
    subprocess.run([*make, "compose-secrets"], capture_output=True, text=True, check=True)

    assignments = [line for line in written.splitlines() if not line.startswith("#")]
    values = dict(line.split("=", 1) for line in assignments)
    assert values["REDIS_PASSWORD"] == "kept" and values["X"] == "1"
    generated = REQUIRED - {"GATEWAY_API_KEY", "REDIS_PASSWORD"}  # the gateway key: compose-key
    generated |= set(SECRET_SOURCES.values())  # POSTGRES_PASSWORD, for the profile pgvector
    assert {name for name in values if len(values[name]) == 43} == generated  # 32 bytes, base64
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", values[name]) for name in generated)  # URL-safe
    assert written.count("GRAFANA_ADMIN_PASSWORD=") == 1, "the empty line was replaced"
    assert env_file.read_text() == written, "a second run changes nothing"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert "GRAFANA_ADMIN_PASSWORD" in first.stdout and "REDIS_PASSWORD" not in first.stdout
