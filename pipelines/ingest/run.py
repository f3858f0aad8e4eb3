"""The ingestion run: discover -> load and clean -> chunk -> embed what changed -> index -> report.

Incremental and idempotent, because chunk ids are content hashes:
- a document whose chunks are all stored already costs no embedding (it is "unchanged");
- a changed document gets only its new chunks embedded and upserted, then its stale ones deleted
  (in that order: a run killed in between leaves extra chunks, never missing ones, and the next
  run removes them);
- `prune` deletes documents that were stored from the given paths but are gone from them.
The collection is the only record of progress: a document counts as done when all of its chunk
ids are stored, so a run stopped by a Qdrant outage cannot mark anything done too early.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.ingest.chunk import Chunk, ChunkingConfig, chunk_document
from pipelines.ingest.documents import Document, Skipped
from pipelines.ingest.index import ChunkStore, StoreUnavailableError
from pipelines.ingest.loaders import JsonlFields, discover, load_file
from pipelines.ingest.report import IngestReport
from services.common.embedders import Embedder


@dataclass
class IngestOptions:
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    jsonl: JsonlFields = field(default_factory=JsonlFields)
    max_bytes: int = 10_000_000
    batch_size: int = 64  # chunks per embedding call
    prune: bool = False


@dataclass
class _Pending:
    """Chunks waiting for embedding, and the stale chunk ids to delete once they are stored."""

    chunks: list[Chunk] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def ingest(
    paths: Sequence[Path],
    store: ChunkStore,
    embedder: Embedder,
    options: IngestOptions,
    on_file: Callable[[Path], None] = lambda path: None,
) -> IngestReport:
    try:
        return _ingest(paths, store, embedder, options, on_file)
    except StoreUnavailableError as exc:
        raise StoreUnavailableError(
            f"{exc} Ingestion stopped there: the chunks it stored are kept, and running it "
            "again embeds and stores only what is missing."
        ) from exc


def _ingest(
    paths: Sequence[Path],
    store: ChunkStore,
    embedder: Embedder,
    options: IngestOptions,
    on_file: Callable[[Path], None],
) -> IngestReport:
    report = IngestReport(chunking=options.chunking.fingerprint())
    started = time.perf_counter()
    store.ensure_collection(embedder.dimension, embedder=embedder.name)
    stored = store.chunk_ids_by_doc()
    seen: set[str] = set()
    pending = _Pending()

    for file, root in discover(paths):
        on_file(file)
        loading = time.perf_counter()
        items = list(load_file(file, root, jsonl=options.jsonl, max_bytes=options.max_bytes))
        report.timings["load"] += time.perf_counter() - loading
        for item in items:
            if isinstance(item, Skipped):
                report.skipped.append(item)
                continue
            seen.add(item.id)
            _plan(item, options, stored.get(item.id, set()), pending, report)
            if len(pending.chunks) >= options.batch_size:
                _flush(pending, store, embedder, report)
    _flush(pending, store, embedder, report)

    if options.prune:
        _prune(paths, store, stored, seen, report)
    report.timings["total"] = time.perf_counter() - started
    report.chunks_in_collection = store.count()
    return report


def _plan(
    document: Document,
    options: IngestOptions,
    stored_ids: set[str],
    pending: _Pending,
    report: IngestReport,
) -> None:
    chunking = time.perf_counter()
    chunks = chunk_document(document, options.chunking)
    report.timings["chunk"] += time.perf_counter() - chunking
    new_ids = {chunk.id for chunk in chunks}
    if new_ids == stored_ids:
        report.documents["unchanged"] += 1
        report.chunks["unchanged"] += len(chunks)
        return
    report.documents["updated" if stored_ids else "added"] += 1
    fresh = [chunk for chunk in chunks if chunk.id not in stored_ids]
    report.chunks["added"] += len(fresh)
    report.chunks["unchanged"] += len(chunks) - len(fresh)
    stale = stored_ids - new_ids
    report.chunks["removed"] += len(stale)
    pending.chunks.extend(fresh)
    pending.stale.extend(stale)


def _flush(pending: _Pending, store: ChunkStore, embedder: Embedder, report: IngestReport) -> None:
    if pending.chunks:
        embedding = time.perf_counter()
        vectors = embedder.embed([chunk.embedding_text() for chunk in pending.chunks])
        report.timings["embed"] += time.perf_counter() - embedding
        indexing = time.perf_counter()
        store.upsert(pending.chunks, vectors)
        report.timings["index"] += time.perf_counter() - indexing
    # Only now that the new chunks are stored do the old ones go (see the module docstring).
    store.delete(pending.stale)
    pending.chunks.clear()
    pending.stale.clear()


def _prune(
    paths: Sequence[Path],
    store: ChunkStore,
    stored: dict[str, set[str]],
    seen: set[str],
    report: IngestReport,
) -> None:
    """Delete documents stored from these paths that this run did not find any more."""
    roots = [str(path) for path in paths]
    sources = store.sources_by_doc()
    for doc_id, source in sources.items():
        if doc_id in seen or not any(source.startswith(root) for root in roots):
            continue
        store.delete(stored.get(doc_id, set()))
        report.documents["pruned"] += 1
        report.chunks["removed"] += len(stored.get(doc_id, set()))
