"""The RAG service's settings: `RAG_*` variables on top of the shared `KitSettings`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import HttpAccessSettings, KitSettings


class RagSettings(KitSettings, HttpAccessSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_")

    host: str = Field("127.0.0.1", description="Interface to listen on; 0.0.0.0 in a container.")
    port: int = Field(8001, ge=1, le=65535)
    collection: str = Field("docs", min_length=1, description="The Qdrant collection to search.")
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
        "stage's candidates; unset: no reranking. None ships with the kit (pipelines/rerank.py).",
    )
    rerank_depth: int = Field(20, ge=1, le=200, description="Candidates the reranker rescores.")
    prompt: str = Field("answer-v2", description="Prompt template in services/rag/prompts/.")
    model: str = Field("local", description="The gateway model alias that writes answers.")
    max_tokens: int = Field(256, ge=16, le=4096)
    # The largest sensible /ask is a 4,000-character question (at most 16 KB of UTF-8) plus a few
    # filters; 64 KiB leaves room for that and for a few hundred /ingest paths.
    max_body_bytes: int = Field(
        64 * 1024, ge=1_024, le=10_000_000, description="Larger request bodies get a 413."
    )
    ingest_roots: list[Path] = Field(
        default_factory=lambda: [Path("data")],
        description='Folders POST /ingest may read, as JSON: ["data", "/srv/docs"].',
    )
    query_log: Path | None = Field(
        default_factory=lambda data: data["data_dir"] / "rag-queries.jsonl",
        description="Append each /ask question to this JSONL file, the sample store that "
        "`kit drift` reads (default: KIT_DATA_DIR/rag-queries.jsonl); off (or empty) disables "
        "it. Questions may hold personal data: see pipelines/drift/store.py on retention.",
    )
    query_log_sample_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of questions written to the query log (0-1)."
    )

    @field_validator("query_log", mode="before")
    @classmethod
    def _off_means_none(cls, value: Any) -> Any:
        """RAG_QUERY_LOG=off (or empty, none, false, 0) turns the query log off."""
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none", "false", "0"):
            return None
        return value
