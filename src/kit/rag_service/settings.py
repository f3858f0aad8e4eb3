"""The RAG service's settings: `RAG_*` variables on top of the shared `KitSettings`.

Who may call (RAG_AUTH, RAG_KEYS_FILE) and what /ingest may read (RAG_INGEST_ROOTS, below
KIT_DOCS_ROOT) are checked here, at start-up, so a service never runs open in production or
with an ingest folder outside the docs root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from kit.core.settings import Environment, HttpAccessSettings, KitSettings


class RagSettings(KitSettings, HttpAccessSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_")

    host: str = Field("127.0.0.1", description="Interface to listen on; 0.0.0.0 in a container.")
    port: int = Field(8001, ge=1, le=65535)
    k: int = Field(5, ge=1, le=50, description="Chunks given to the model as context.")
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    min_relevance: float = Field(
        0.40,
        ge=0.0,
        le=1.0,
        description="Refuse without calling the model when no chunk's cosine similarity to the "
        "question reaches this (0.40: below every answerable question of the shipped set).",
    )
    rerank_model: str | None = Field(
        None,
        description="A cross-encoder (folder or Hugging Face name) that reranks the first "
        "stage's candidates; unset: no reranking. None ships with the kit (src/kit/rag/rerank.py).",
    )
    rerank_depth: int = Field(20, ge=1, le=200, description="Candidates the reranker rescores.")
    prompt: str = Field(
        "answer-v2",
        description="The answer prompt: a file of src/kit/rag/prompts/ (answer-v2), or a version "
        "of the prompt registry (prompts:/answer-v2@production, pushed by `kit prompts push`).",
    )
    model: str = Field("local", description="The gateway model alias that writes answers.")
    max_tokens: int = Field(256, ge=16, le=4096)
    # The largest sensible /ask is a 4,000-character question (at most 16 KB of UTF-8) plus a few
    # filters; 64 KiB leaves room for that and for a few hundred /ingest paths.
    max_body_bytes: int = Field(
        64 * 1024, ge=1_024, le=10_000_000, description="Larger request bodies get a 413."
    )

    # --- Who may call -------------------------------------------------------------------------
    auth: Literal["keys", "open"] = Field(
        "keys",
        description="keys: a Bearer key from the keys file is required (`kit rag keys "
        "create`); /ingest needs an admin key. open: anyone may ask and ingest, for local "
        "development only (refused with KIT_ENV=production).",
    )
    keys_file: Path | None = Field(
        None,
        description="YAML of hashed RAG keys and their scopes (`kit rag keys create` writes "
        "it; re-read within a second of a change). Default: KIT_DATA_DIR/rag-keys.yaml.",
    )

    # --- Ingestion over HTTP -------------------------------------------------------------------
    ingest_roots: list[Path] = Field(
        default_factory=lambda: [Path()],
        description="Folders POST /ingest may read, relative to KIT_DOCS_ROOT, as JSON: "
        '["fastapi-docs", "handbook"]. Default ["."]: the whole docs root.',
    )
    ingest_job_ttl_s: int = Field(
        3600,
        ge=1,
        le=7 * 86_400,
        description="How long a finished /ingest job's status and report stay readable.",
    )
    query_log: Path | None = Field(
        default_factory=lambda data: data["data_dir"] / "rag-queries.jsonl",
        description="Append each /ask question to this JSONL file, the sample store that "
        "`kit drift` reads (default: KIT_DATA_DIR/rag-queries.jsonl); off (or empty) disables "
        "it. Questions may hold personal data: see src/kit/drift/store.py on retention.",
    )
    query_log_sample_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of questions written to the query log (0-1)."
    )

    @field_validator("ingest_roots")
    @classmethod
    def _inside_the_docs_root(cls, folders: list[Path], info: ValidationInfo) -> list[Path]:
        """Each folder below KIT_DOCS_ROOT (declared on the base class, so validated first)."""
        docs_root = info.data.get("docs_root")
        if docs_root is None:  # KIT_DOCS_ROOT itself was invalid: that error is reported
            return folders
        root = docs_root.resolve()
        for folder in folders:
            if not (root / folder).resolve().is_relative_to(root):
                raise ValueError(
                    f"{folder} is outside KIT_DOCS_ROOT ({docs_root}): /ingest may read only "
                    "below it, where document ids are measured from. Name folders relative to "
                    'KIT_DOCS_ROOT (["fastapi-docs"]), or set KIT_DOCS_ROOT to a folder that '
                    "contains them."
                )
        return folders

    @model_validator(mode="after")
    def _open_mode_only_in_development(self) -> RagSettings:
        if self.auth == "open" and self.environment is Environment.PRODUCTION:
            raise ValueError(
                "RAG_AUTH=open lets anyone read your documents through /ask and make the server "
                "ingest files; it is refused with KIT_ENV=production. Create keys with "
                "`kit rag keys create --id NAME` (add --admin for /ingest) and set RAG_AUTH=keys."
            )
        return self

    @property
    def resolved_keys_file(self) -> Path:
        return self.keys_file or self.data_dir / "rag-keys.yaml"

    @property
    def resolved_ingest_roots(self) -> list[Path]:
        """RAG_INGEST_ROOTS as absolute folders, links resolved (all below KIT_DOCS_ROOT)."""
        return [(self.docs_root / folder).resolve() for folder in self.ingest_roots]

    @field_validator("query_log", mode="before")
    @classmethod
    def _off_means_none(cls, value: Any) -> Any:
        """RAG_QUERY_LOG=off (or empty, none, false, 0) turns the query log off."""
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none", "false", "0"):
            return None
        return value
