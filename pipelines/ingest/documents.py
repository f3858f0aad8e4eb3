"""The shapes that flow through ingestion: a loaded document, and an input that was skipped.

A `Document` is one source after loading and cleaning: its text keeps Markdown-style headings
(`# Title`, `## Section`) whatever the source format, so chunking can follow the structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class Document:
    id: str  # stable across runs: the path relative to the ingested folder, or the record's id
    source: str  # where it came from: the file path (and line, for JSONL records)
    title: str
    text: str  # cleaned; headings as "#" lines, paragraphs separated by blank lines
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """An input left out, and why, in words a person can act on ("empty file", "not UTF-8")."""

    source: str
    reason: str
