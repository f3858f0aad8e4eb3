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
