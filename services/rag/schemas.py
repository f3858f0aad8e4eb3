"""Request and response bodies of the RAG API (the contract clients rely on)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)
    k: int | None = Field(None, ge=1, le=50, description="Chunks to retrieve (default RAG_K).")
    filters: dict[str, str] = Field(default_factory=dict, description="Metadata equality filters.")


class CitationOut(BaseModel):
    number: int
    chunk_id: str
    doc_id: str
    source: str
    title: str
    snippet: str
    inferred: bool


class ContextOut(BaseModel):
    chunk_id: str
    doc_id: str
    title: str
    section: list[str]
    score: float
    text: str


class AskResponse(BaseModel):
    answer: str
    refused: bool
    refusal_reason: str | None
    citations: list[CitationOut]
    invalid_citations: list[int]
    support: float = Field(description="Share of answer sentences supported by cited sources.")
    contexts: list[ContextOut]
    latency_ms: dict[str, float]
    model: str | None


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(min_length=1)
    prune: bool = False


class IngestJobOut(BaseModel):
    id: str
    status: str
    paths: list[str]
    report: dict[str, object] | None
    error: str | None
