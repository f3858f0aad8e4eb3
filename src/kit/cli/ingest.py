"""`kit ingest PATH...` and `kit search "query"`: build the document index and query it.

kit ingest data/fastapi-docs/docs            # Markdown, text, HTML, PDF, JSON/JSONL
kit ingest data/notes.jsonl --text-field body --meta-field team
kit ingest data/fastapi-docs/docs --rebuild  # delete the collection first, then build it again
kit ingest data/fastapi-docs/docs --engine spark                        # PySpark, local[*]
kit ingest data/fastapi-docs/docs --engine spark --master spark://host:7077  # on a cluster
kit search "how do I declare a path parameter" --k 5 --filter category=tutorial

Every path must lie below KIT_DOCS_ROOT (default `data`): a document's id is its path from there
("fastapi-docs/docs/tutorial/body.md"), the same whichever folder is named.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kit.cli.state import console, exits_on_kit_error, state, traced
from kit.core.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class Engine(StrEnum):
    local = "local"  # one Python process (src/kit/rag/ingest.py)
    spark = "spark"  # a PySpark job (src/kit/rag/spark_ingest.py)


@exits_on_kit_error
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.", exists=True)],
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection. Default: RAG_COLLECTION (docs).")
    ] = None,
    prune: Annotated[bool, typer.Option(help="Remove documents gone from these paths.")] = False,
    rebuild: Annotated[
        bool,
        typer.Option(help="Delete the collection first, then build it from these paths only."),
    ] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any input was skipped.")] = False,
    max_tokens: Annotated[int, typer.Option(help="Chunk budget in word pieces.")] = 200,
    overlap: Annotated[int, typer.Option(help="Tokens shared by neighbouring chunks.")] = 32,
    max_bytes: Annotated[int, typer.Option(help="Skip files larger than this.")] = 10_000_000,
    id_field: Annotated[str, typer.Option(help="JSON/JSONL: the id field.")] = "id",
    text_field: Annotated[list[str] | None, typer.Option(help="JSON/JSONL: text field(s).")] = None,
    title_field: Annotated[str, typer.Option(help="JSON/JSONL: the title field.")] = "title",
    meta_field: Annotated[list[str] | None, typer.Option(help="JSON/JSONL: metadata.")] = None,
    engine: Annotated[
        Engine, typer.Option(help="local: this process; spark: a PySpark job.")
    ] = Engine.local,
    master: Annotated[
        str, typer.Option(help="--engine spark: local[*], spark://HOST:7077 or k8s://URL.")
    ] = "local[*]",
) -> None:
    """Load, clean, chunk, embed and index documents; unchanged documents cost nothing."""
    from kit.rag.chunk import ChunkingConfig
    from kit.rag.ingest import IngestOptions
    from kit.rag.ingest import ingest as run_ingest
    from kit.rag.loaders import JsonlFields
    from kit.rag.paths import DocsRoot
    from kit.rag.store import open_store
    from kit.runtime import open_embedder

    settings = state(ctx).settings()
    root = DocsRoot.at(settings.docs_root)
    for path in paths:  # a path outside the root fails now, not after the model has loaded
        root.locate(path)
    if engine is Engine.spark:
        require_spark()  # before the model loads, too
    try:
        chunking = ChunkingConfig(max_tokens=max_tokens, overlap_tokens=overlap)
    except ValueError as exc:
        raise ConfigError(f"Invalid chunking options: {exc}") from None
    options = IngestOptions(
        chunking=chunking,
        jsonl=JsonlFields(
            id=id_field,
            text=tuple(text_field or ["text"]),
            title=title_field,
            metadata=tuple(meta_field or []),
        ),
        max_bytes=max_bytes,
        prune=prune,
        rebuild=rebuild,
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        traced(settings, "ingest"),
        open_embedder(settings) as embedder,
        open_store(settings, collection) as store,
        spark_job(master) if engine is Engine.spark else nullcontext() as spark,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        if spark is not None:
            from kit.rag.spark_ingest import ingest_with_spark

            progress.add_task(f"ingesting with spark on {master}", total=None)
            report = ingest_with_spark(
                spark, paths, store, embedder, options, root=settings.docs_root, settings=settings
            )
        else:
            task = progress.add_task("ingesting", total=None)
            report = run_ingest(
                paths,
                store,
                embedder,
                options,
                root=settings.docs_root,
                on_file=lambda path: progress.update(task, advance=1, description=path.name),
            )
    saved = report.save(settings.data_dir / "reports")
    summary = report.as_dict()
    console.print(
        f"documents: {summary['documents']}\nchunks: {summary['chunks']} "
        f"({report.chunks_in_collection} in {store.collection!r})\n"
        f"time: {summary['timings']}, {summary['chunks_per_second']} chunks/s\nreport: {saved}\n"
        f"ids: paths below KIT_DOCS_ROOT ({settings.docs_root})"
    )
    if report.quality:
        console.print(f"quality: {dict(report.quality)}")
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {escape(skipped.source)}: {escape(skipped.reason)}")
    if strict and report.skipped:
        raise typer.Exit(code=1)


def require_spark() -> None:
    """Refuse, with the fix, when the spark engine's pieces are missing: pyspark, or a Java."""
    from kit.cli.doctor import java_version

    if importlib.util.find_spec("pyspark") is None:
        raise ConfigError(
            "--engine spark needs pyspark: pip install -e '.[spark]' (or `make setup`)."
        )
    if java_version() is None:
        raise ConfigError(
            "--engine spark needs Java 17 or later on PATH, for Spark's JVM: "
            "apt-get install default-jre-headless (Debian/Ubuntu), or set JAVA_HOME."
        )


@contextmanager
def spark_job(master: str) -> Iterator[SparkSession]:
    """A Spark session on `master`, stopped when the block ends however it ends."""
    from kit.rag.spark_ingest import spark_session

    session = spark_session(master)
    try:
        yield session
    finally:
        session.stop()


@exits_on_kit_error
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or keyword.")] = "hybrid",
    filter_: Annotated[
        list[str] | None, typer.Option("--filter", help="key=value on metadata; repeatable.")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection. Default: RAG_COLLECTION (docs).")
    ] = None,
    rerank_model: Annotated[
        str | None, typer.Option(help="A cross-encoder (folder or name) to rerank with.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the index and print ranked chunks with their document ids and scores."""
    from kit.rag.rerank import load_reranker
    from kit.rag.retrieval import Mode, Retriever
    from kit.rag.store import open_store
    from kit.runtime import open_embedder

    if mode not in ("hybrid", "dense", "keyword"):
        raise ConfigError(f"--mode {mode!r}: use hybrid, dense or keyword")
    filters = {}
    for item in filter_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--filter {item!r}: write it as key=value")
        filters[key] = value
    settings = state(ctx).settings()
    with open_store(settings, collection) as store:
        if not store.count():
            raise ConfigError(
                f"Collection {store.collection!r} is empty or missing; run `kit ingest` first."
            )
        with open_embedder(settings) as embedder:
            store.check_collection(embedder.name)
            retriever = Retriever(
                store,
                embedder.embed,
                reranker=load_reranker(rerank_model),
                embed_model=embedder.name,
            )
            hits = retriever.search(query, k=k, mode=cast(Mode, mode), filters=filters)
    if as_json:
        print(json.dumps([hit.__dict__ for hit in hits], default=list, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("#", "score", "document", "section", "text"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, 1):
        section = " > ".join(hit.heading_path[-2:])
        snippet = " ".join(hit.text.split())[:160]
        table.add_row(str(rank), f"{hit.score:.3f}", hit.doc_id, escape(section), escape(snippet))
    console.print(table)
