"""The ingestion run: discover -> load and clean -> chunk -> embed what changed -> index -> report.

    ingest([Path("data/fastapi-docs/docs")], store, embedder, IngestOptions(), root=Path("data"))

Incremental and idempotent, because chunk ids are content hashes:
- a document whose chunks are all stored already costs no embedding (it is "unchanged");
- a changed document gets only its new chunks embedded and upserted, then its stale ones deleted
  (in that order: a run killed in between leaves extra chunks, never missing ones, and the next
  run removes them);
- `prune` deletes documents stored from files inside the given paths that this run did not find.
Ids are paths below `root` (KIT_DOCS_ROOT), so the same file has the same id whichever folder is
named, and prune compares folders part by part (src/kit/rag/paths.py): ingesting a subfolder
never touches a document outside it. The collection is the only record of progress: a document
counts as done when all of its chunk ids are stored, so a run stopped by a Qdrant outage cannot
mark anything done too early.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.util.types import AttributeValue

from kit.core.ports import Embedder
from kit.core.tracing import GenAI, tracer
from kit.rag.chunk import Chunk, ChunkingConfig, chunk_document
from kit.rag.documents import Document, Skipped
from kit.rag.loaders import JsonlFields, load_file
from kit.rag.paths import DocsRoot, discover, inside
from kit.rag.report import IngestReport
from kit.rag.store import ChunkStore, StoreUnavailableError


@dataclass
class IngestOptions:
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    jsonl: JsonlFields = field(default_factory=JsonlFields)
    max_bytes: int = 10_000_000
    batch_size: int = 64  # chunks per embedding call
    prune: bool = False
    rebuild: bool = False  # delete the collection first (once the paths are known to be valid)


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
    *,
    root: Path,
    on_file: Callable[[Path], None] = lambda path: None,
) -> IngestReport:
    """Ingest the files under `paths`, each of which must lie below `root` (KIT_DOCS_ROOT).

    Traced as one `ingest` span with the report's counts, and a span per embedding batch and
    per upsert below it (src/kit/core/tracing.py)."""
    attributes = {GenAI.DATA_SOURCE: store.collection, "kit.ingest.embedder": embedder.name}
    try:
        with tracer().start_as_current_span(
            f"ingest {store.collection}", attributes=attributes
        ) as span:
            report = _ingest(paths, store, embedder, options, DocsRoot.at(root), on_file)
            span.set_attributes(_report_attributes(report))
            return report
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
    root: DocsRoot,
    on_file: Callable[[Path], None],
) -> IngestReport:
    report = IngestReport(chunking=options.chunking.fingerprint())
    started = time.perf_counter()
    folders, stored = prepare_collection(paths, store, embedder, options, root)
    seen: set[str] = set()
    pending = _Pending()

    for found in discover(paths, root):
        if isinstance(found, Skipped):  # a link out of the root, a loop: never read
            report.skipped.append(found)
            continue
        on_file(found)
        loading = time.perf_counter()
        items = list(load_file(found, root.path, jsonl=options.jsonl, max_bytes=options.max_bytes))
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
        prune_missing(folders, store, stored, seen, report)
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
    fresh_ids, stale = plan_document([chunk.id for chunk in chunks], stored_ids, report)
    pending.chunks.extend(chunk for chunk in chunks if chunk.id in fresh_ids)
    pending.stale.extend(stale)


def prepare_collection(
    paths: Sequence[Path],
    store: ChunkStore,
    embedder: Embedder,
    options: IngestOptions,
    root: DocsRoot,
) -> tuple[list[str], dict[str, set[str]]]:
    """What both engines do before reading a file: the folders as root-relative names
    ("fastapi-docs/docs"), checked before anything changes, so a path outside the root (or a
    typo) cannot cost a --rebuild its collection; then the collection, and the ids it holds."""
    located = [root.locate(path) for path in paths]
    if missing := [str(path) for path, at in zip(paths, located, strict=True) if not at.exists()]:
        raise FileNotFoundError(f"{', '.join(missing)} does not exist")
    folders = [root.id_of(path) for path in located]
    if options.rebuild:
        store.drop()
    store.ensure_collection(embedder.dimension, embedder=embedder.name)
    return folders, store.chunk_ids_by_doc()


def plan_document(
    ids: Sequence[str], stored_ids: set[str], report: IngestReport
) -> tuple[set[str], set[str]]:
    """A document's chunk ids now against those stored: (new ids to embed, stale ids to delete),
    counted in `report`. Both engines decide by this, from ids alone."""
    new_ids = set(ids)
    if new_ids == stored_ids:
        report.documents["unchanged"] += 1
        report.chunks["unchanged"] += len(ids)
        return set(), set()
    report.documents["updated" if stored_ids else "added"] += 1
    fresh = [chunk_id for chunk_id in ids if chunk_id not in stored_ids]
    report.chunks["added"] += len(fresh)
    report.chunks["unchanged"] += len(ids) - len(fresh)
    stale = stored_ids - new_ids
    report.chunks["removed"] += len(stale)
    return set(fresh), stale


def _flush(pending: _Pending, store: ChunkStore, embedder: Embedder, report: IngestReport) -> None:
    if pending.chunks:
        count: dict[str, AttributeValue] = {"kit.ingest.chunks": len(pending.chunks)}
        embedding = time.perf_counter()
        with tracer().start_as_current_span(
            f"embeddings {embedder.name}",
            attributes={GenAI.OPERATION: "embeddings", GenAI.REQUEST_MODEL: embedder.name} | count,
        ):
            vectors = embedder.embed([chunk.embedding_text() for chunk in pending.chunks])
        report.timings["embed"] += time.perf_counter() - embedding
        indexing = time.perf_counter()
        with tracer().start_as_current_span("upsert", attributes=count):
            store.upsert(pending.chunks, vectors)
        report.timings["index"] += time.perf_counter() - indexing
    # Only now that the new chunks are stored do the old ones go (see the module docstring).
    store.delete(pending.stale)
    pending.chunks.clear()
    pending.stale.clear()


def _report_attributes(report: IngestReport) -> dict[str, int | float]:
    """The report's counts as span attributes: kit.ingest.documents.added, ..."""
    attributes: dict[str, int | float] = {
        f"kit.ingest.documents.{state}": count for state, count in report.documents.items()
    }
    attributes |= {f"kit.ingest.chunks.{state}": count for state, count in report.chunks.items()}
    attributes["kit.ingest.skipped"] = len(report.skipped)
    attributes["kit.ingest.chunks_in_collection"] = report.chunks_in_collection
    return attributes


def prune_missing(
    folders: Sequence[str],
    store: ChunkStore,
    stored: dict[str, set[str]],
    seen: set[str],
    report: IngestReport,
) -> None:
    """Delete documents whose file lies inside these (root-relative) folders, or is one of these
    files, that this run did not find any more. A document stored without a path is kept."""
    for doc_id, path in store.paths_by_doc().items():
        if doc_id in seen or not path or not any(inside(path, folder) for folder in folders):
            continue
        store.delete(stored.get(doc_id, set()))
        report.documents["pruned"] += 1
        report.chunks["removed"] += len(stored.get(doc_id, set()))
