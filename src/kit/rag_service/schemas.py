"""Request and response bodies of the RAG API (the contract clients rely on)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# A metadata field name, dotted for nested fields ("meta.owner.team"). Qdrant rejects a payload
# path with spaces, an empty part or ".." ("Invalid path", which was a 500 before this pattern).
FilterKey = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", max_length=64)
]
FilterValue = Annotated[str, StringConstraints(max_length=512)]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)
    k: int | None = Field(None, ge=1, le=50, description="Chunks to retrieve (default RAG_K).")
    filters: dict[FilterKey, FilterValue] = Field(
        default_factory=dict,
        max_length=16,
        description='Metadata equality filters: {"category": "tutorial"}.',
    )
    include_contexts: bool = Field(
        False,
        description="Also return the retrieved chunks with their full text (`contexts`), for "
        "answers and refusals alike. Off by default, so a refusal carries no document text "
        "and an answer only what its citations quote.",
    )


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
    citation_status: Literal["cited", "inferred", "invalid", "uncited", "refused"] = Field(
        description="cited: the model cited only sources it was shown; inferred: it cited none, "
        "so sources were attributed by word overlap; invalid: it cited a source it was not "
        "shown (see invalid_citations); uncited: no citation and no overlapping source. Show "
        "anything but `cited` with a warning."
    )
    contexts: list[ContextOut] | None = Field(
        description="The retrieved chunks, when the request set include_contexts; else null."
    )
    latency_ms: dict[str, float]
    model: str | None


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = Field(
        min_length=1,
        description="Files or folders relative to KIT_DOCS_ROOT, inside RAG_INGEST_ROOTS: "
        '["fastapi-docs/docs/tutorial"]. Document ids are paths from KIT_DOCS_ROOT, whichever '
        "folder is named.",
    )
    prune: bool = Field(
        False, description="Remove documents whose files were inside these paths and are gone."
    )


class IngestJobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    paths: list[str] = Field(description="As the request named them.")
    report: dict[str, object] | None
    error: str | None
