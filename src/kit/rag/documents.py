"""The shapes that flow through ingestion: a loaded document, and an input that was skipped.

A `Document` is one source after loading and cleaning: its text keeps Markdown-style headings
(`# Title`, `## Section`) whatever the source format, so chunking can follow the structure.
Every path in them is relative to KIT_DOCS_ROOT (src/kit/rag/paths.py), never a server's
absolute path: they end up in the index, in citations and in reports that clients read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class Document:
    id: str  # stable across runs: the file's path below KIT_DOCS_ROOT, or the record's own id
    source: str  # where it came from, below KIT_DOCS_ROOT: the file (and line, for JSONL records)
    title: str
    text: str  # cleaned; headings as "#" lines, paragraphs separated by blank lines
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    # The file it was read from, below KIT_DOCS_ROOT ("" for one made in code): what `--prune`
    # compares with the folders it was given, for records as for whole files.
    path: str = ""


@dataclass(frozen=True)
class Skipped:
    """An input left out, and why, in words a person can act on ("empty file", "not UTF-8")."""

    source: str
    reason: str
