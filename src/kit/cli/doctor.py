"""`kit doctor`: check this machine can run the kit, and say how to fix what is missing.

Each check is a small function returning `Check` results; the command renders them as a table (or
JSON) and exits non-zero when any check fails. A warning (an optional part not installed, a
server not configured) does not fail: the kit runs embedded without it.

What is checked: the Python version, the settings, the installed packages against the pins in
pyproject.toml (read from the installed package's metadata, so nothing is listed twice), which
torch build is installed, whether Java is found (the spark ingest engine's JVM), the data and
cache directories, the shipped models (present, and loaded for real unless --no-load), and each
configured server (gateway, Qdrant, Redis, MLflow).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import httpx
from packaging.requirements import Requirement

from kit.core.errors import KitError
from kit.core.settings import KitSettings
from kit.llm.local_models import MINILM, SMOLLM2, available_engines

DISTRIBUTION = "ai-engineering-kit"
SETUP_HINT = "run `make setup`"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # optional or degraded: the kit still runs
    FAIL = "fail"  # something the kit needs is broken
    INFO = "info"  # nothing to check (for example a server left in embedded mode)


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    status: Status
    detail: str
    fix: str = ""


# --- Python, packages, torch ---------------------------------------------------------------------


def check_python() -> Iterator[Check]:
    # The version itself is enforced by pip (requires-python >= 3.11); what goes wrong in practice
    # is running the kit with another interpreter than the project's virtual environment.
    version = platform.python_version()
    if sys.prefix != sys.base_prefix:
        yield Check("python", "interpreter", Status.OK, f"Python {version}, venv {sys.prefix}")
    else:
        yield Check(
            "python",
            "interpreter",
            Status.WARN,
            f"Python {version} outside a virtual environment ({sys.executable})",
            "run `make setup`, then use .venv/bin/kit (or `source .venv/bin/activate`)",
        )


def pinned_requirements() -> dict[str, list[Requirement]]:
    """The kit's pinned requirements by extra ("" = always installed), from installed metadata."""
    by_extra: dict[str, list[Requirement]] = {}
    for line in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(line)
        if requirement.name == DISTRIBUTION:
            continue  # an extra that includes other extras, e.g. all = [web, gateway, ...]
        extra = ""
        if requirement.marker is not None:
            # Markers look like `extra == "gateway"`; find which extra turns this one on.
            extra = next(
                (e for e in extra_names() if requirement.marker.evaluate({"extra": e})), "?"
            )
        by_extra.setdefault(extra, []).append(requirement)
    return by_extra


def extra_names() -> list[str]:
    return metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []


def check_packages() -> Iterator[Check]:
    try:
        groups = pinned_requirements()
    except metadata.PackageNotFoundError:
        yield Check("packages", DISTRIBUTION, Status.FAIL, "the kit is not installed", SETUP_HINT)
        return
    for extra, requirements in sorted(groups.items()):
        problems = []
        for requirement in requirements:
            try:
                installed = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{requirement.name} missing")
                continue
            if not requirement.specifier.contains(installed, prereleases=True):
                problems.append(f"{requirement.name} {installed} (wants {requirement.specifier})")
        label = extra or "core"
        if not problems:
            yield Check("packages", label, Status.OK, f"{len(requirements)} packages as pinned")
        else:
            install = f"pip install -e '.[{extra}]'" if extra else "pip install -e ."
            status = Status.FAIL if not extra else Status.WARN
            yield Check(
                "packages", label, status, "; ".join(problems), f"{install} or {SETUP_HINT}"
            )


def check_torch() -> Iterator[Check]:
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return
    cuda = sorted(
        d.metadata["Name"]
        for d in metadata.distributions()
        if (d.metadata["Name"] or "").lower().startswith("nvidia-")
    )
    if cuda:
        yield Check(
            "packages",
            "torch build",
            Status.WARN,
            f"torch {version} with CUDA libraries ({len(cuda)} nvidia-* packages, several GB)",
            "for CPU only: pip install --force-reinstall torch --index-url "
            "https://download.pytorch.org/whl/cpu",
        )
    else:
        yield Check("packages", "torch build", Status.OK, f"torch {version}, CPU build")


def java_version() -> str | None:
    """The first line `java -version` prints ('openjdk version "17.0.15" 2025-04-15'), or None
    when there is no Java where Spark looks for one: $JAVA_HOME/bin/java, else `java` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).is_file():
        return None
    try:
        done = subprocess.run(  # noqa: S603 - the java on PATH, with a fixed argument
            [java, "-version"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def check_java() -> Iterator[Check]:
    """Java runs Spark's JVM: only `kit ingest --engine spark` needs it."""
    version = java_version()
    if version is not None:
        yield Check("packages", "java", Status.OK, f"{version} (for kit ingest --engine spark)")
    else:
        yield Check(
            "packages",
            "java",
            Status.INFO,
            "no Java found: only `kit ingest --engine spark` needs it",
            "apt-get install default-jre-headless (Java 17 or later)",
        )


# --- Directories and models ----------------------------------------------------------------------


def check_dirs(settings: KitSettings) -> Iterator[Check]:
    for name, path in (("data dir", settings.data_dir), ("cache dir", settings.cache_dir)):
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".kit-doctor-probe"
            probe.write_text("ok")
            probe.unlink()
            yield Check("storage", name, Status.OK, str(path))
        except OSError as exc:
            variable = "KIT_DATA_DIR" if name == "data dir" else "KIT_CACHE_DIR"
            yield Check(
                "storage",
                name,
                Status.FAIL,
                f"{path}: {exc.strerror}",
                f"set {variable} to a writable folder",
            )


def check_models(settings: KitSettings, load: bool) -> Iterator[Check]:
    for model in (SMOLLM2, MINILM):
        try:
            path = model.path()
        except KitError as exc:
            yield Check("models", model.name, Status.FAIL, str(exc), SETUP_HINT)
            continue
        yield Check("models", model.name, Status.OK, f"{_size(path)} at {path} ({model.license})")

    engines = available_engines()
    chosen: str = settings.chat_engine
    if chosen == "auto":
        chosen = engines[0] if engines else "none"
    if not engines:
        yield Check(
            "models", "chat engine", Status.FAIL, "neither llama.cpp nor transformers", SETUP_HINT
        )
    else:
        yield Check(
            "models", "chat engine", Status.OK, f"{chosen} (installed: {', '.join(engines)})"
        )
    if load:
        yield from _load_models(settings)


def _load_models(settings: KitSettings) -> Iterator[Check]:
    """Load each model for real and use it once: the only proof that it works here."""
    from kit.llm.local_client import LocalClient

    client = LocalClient(settings)

    def answer() -> str:
        result = client.chat([{"role": "user", "content": "Say hello."}], max_tokens=8)
        engine = client.chat_engine
        return f"{engine.engine}, loaded in {engine.load_seconds:.1f}s, said {result.text!r}"

    def embed() -> str:
        vector = client.embedder.embed(["kit doctor"])[0]
        return f"{len(vector)}-d vector, loaded in {client.embedder.load_seconds:.1f}s"

    yield _timed("models", f"load + answer ({SMOLLM2.name})", answer)
    yield _timed("models", f"load + embed ({MINILM.name})", embed)


def _timed(area: str, name: str, probe: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail = probe()
    except Exception as exc:  # any failure to load is what this check reports
        return Check(area, name, Status.FAIL, f"{type(exc).__name__}: {exc}", SETUP_HINT)
    return Check(area, name, Status.OK, f"{detail} ({time.perf_counter() - started:.1f}s total)")


def _size(path: Path) -> str:
    size = (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )
    return f"{size / 1e6:.0f} MB"


# --- Servers -------------------------------------------------------------------------------------


def check_servers(settings: KitSettings) -> Iterator[Check]:
    timeout = settings.probe_timeout_s
    if settings.gateway_url is None:
        yield Check("servers", "gateway", Status.INFO, "GATEWAY_URL unset: in-process gateway")
    else:
        yield _http_probe(
            "gateway",
            f"{settings.gateway_url}".rstrip("/") + "/healthz",
            timeout,
            "GATEWAY_URL",
            "start it with `kit serve gateway`",
        )
    if settings.qdrant_url is None:
        store = settings.data_dir / "qdrant"
        yield Check("servers", "qdrant", Status.INFO, f"QDRANT_URL unset: local mode at {store}")
    else:
        headers = {}
        if settings.qdrant_api_key is not None:
            headers["api-key"] = settings.qdrant_api_key.get_secret_value()
        yield _http_probe(
            "qdrant",
            f"{settings.qdrant_url}".rstrip("/") + "/readyz",
            timeout,
            "QDRANT_URL",
            "start Qdrant (`docker compose up -d qdrant`)",
            headers,
        )
    if settings.store == "pgvector":
        if settings.database_url is None:
            folder = settings.data_dir / "postgres"
            detail = f"KIT_STORE=pgvector, DATABASE_URL unset: the kit starts Postgres at {folder}"
            yield Check("servers", "postgres", Status.INFO, detail)
        else:
            yield _postgres_probe(settings.database_url.get_secret_value(), timeout)
    if settings.redis_url is None:
        yield Check("servers", "redis", Status.INFO, "REDIS_URL unset: in-memory cache and limits")
    else:
        yield _redis_probe(settings.redis_url.get_secret_value(), timeout)
    uri = settings.mlflow_tracking_uri
    if uri is None:
        store = settings.data_dir / "mlflow.db"
        yield Check(
            "servers", "mlflow", Status.INFO, f"MLFLOW_TRACKING_URI unset: sqlite at {store}"
        )
    elif uri.startswith(("http://", "https://")):
        yield _http_probe(
            "mlflow",
            uri.rstrip("/") + "/health",
            timeout,
            "MLFLOW_TRACKING_URI",
            "start it (`docker compose up -d mlflow`)",
        )
    else:
        yield Check("servers", "mlflow", Status.INFO, f"local store: {uri}")


def _http_probe(
    name: str,
    url: str,
    timeout: float,
    variable: str,
    start_hint: str,
    headers: dict[str, str] | None = None,
) -> Check:
    try:
        response = httpx.get(url, timeout=timeout, headers=headers or {})
    except httpx.HTTPError as exc:
        return Check(
            "servers",
            name,
            Status.FAIL,
            f"{url} unreachable ({type(exc).__name__})",
            f"{start_hint}, or fix or unset {variable}",
        )
    if response.status_code >= 400:
        return Check(
            "servers",
            name,
            Status.FAIL,
            f"{url} answered {response.status_code}",
            f"check the server's logs, or fix {variable}",
        )
    return Check("servers", name, Status.OK, f"{url} answered {response.status_code}")


def _redis_probe(url: str, timeout: float) -> Check:
    try:
        import redis
    except ImportError:
        return Check(
            "servers",
            "redis",
            Status.FAIL,
            "REDIS_URL is set but redis-py is missing",
            "pip install -e '.[gateway]'",
        )
    shown = _without_password(url)
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        with client:
            client.ping()
    except redis.RedisError as exc:
        return Check(
            "servers",
            "redis",
            Status.FAIL,
            f"{shown} unreachable ({exc})",
            "start Redis (`redis-server` or `docker compose up -d redis`), or fix REDIS_URL",
        )
    return Check("servers", "redis", Status.OK, f"{shown} answered PING")


def _postgres_probe(url: str, timeout: float) -> Check:
    """Connect to DATABASE_URL and ask for pgvector: the store needs both."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        fix = "pip install -e '.[rag]'"
        return Check("servers", "postgres", Status.FAIL, "psycopg is missing", fix)
    parts = conninfo_to_dict(url)
    shown = f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname')}"
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            available = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(
            "servers",
            "postgres",
            Status.FAIL,
            f"{shown} unreachable ({first_line})",
            "start it (`docker compose --profile pgvector up -d postgres`), or fix DATABASE_URL",
        )
    if row is not None:
        return Check("servers", "postgres", Status.OK, f"{shown} answered; pgvector {row[0]}")
    if available is not None:  # `kit ingest` creates it when the user may
        detail = f"{shown} answered; pgvector installed, not yet enabled in this database"
        fix = "`kit ingest` enables it (CREATE EXTENSION vector) if this user may"
        return Check("servers", "postgres", Status.WARN, detail, fix)
    return Check(
        "servers",
        "postgres",
        Status.FAIL,
        f"{shown} answered, but has no pgvector",
        "use a Postgres with pgvector (the pgvector/pgvector image, or a managed one with it)",
    )


def _without_password(url: str) -> str:
    parsed = httpx.URL(url)
    masked = "***"  # shown instead of the password
    return str(parsed.copy_with(password=masked)) if parsed.password else url


# --- All together ---------------------------------------------------------------------------------


def run_checks(settings: KitSettings | None, settings_error: str | None, load: bool) -> list[Check]:
    checks = [*check_python(), *check_packages(), *check_torch(), *check_java()]
    if settings is None:
        checks.append(
            Check(
                "settings",
                "environment",
                Status.FAIL,
                settings_error or "invalid",
                "fix the variables named above (see .env.example)",
            )
        )
        return checks
    checks.append(
        Check(
            "settings",
            "environment",
            Status.OK,
            f"KIT_ENV={settings.environment.value}, log level {settings.log_level}",
        )
    )
    checks += [*check_dirs(settings), *check_models(settings, load), *check_servers(settings)]
    return checks


def as_json(checks: list[Check]) -> list[dict[str, str]]:
    return [asdict(check) for check in checks]
