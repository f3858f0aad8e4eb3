"""`kit drift`: compare recent questions with a reference, export the scores, write a report.

kit drift                                        # the last 7 days of the RAG query log
kit drift --last 500 --metrics-file /var/lib/node_exporter/textfile/drift.prom
kit drift --reference-window 14d..7d --window 7d --pushgateway http://127.0.0.1:9091
kit drift --fail-on-drift                        # exit 3 on drift: for CI and cron

Exit codes: 0 no drift (or drift without --fail-on-drift), 3 drift, 2 invalid options or
settings, 1 any other error (an empty window, a Pushgateway that does not answer).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kit.cli.state import console, err_console, exits_on_kit_error, state
from kit.core.errors import ConfigError

DRIFT_EXIT_CODE = 3  # distinct from 1 (the job itself failed), so cron can tell them apart


@exits_on_kit_error
def drift(
    ctx: typer.Context,
    log: Annotated[
        Path | None, typer.Option(help="The query log. Default: RAG_QUERY_LOG.", dir_okay=False)
    ] = None,
    reference: Annotated[
        Path, typer.Option(help="Reference questions: JSONL with a question field, or text.")
    ] = Path("data/rag/fastapi-docs-questions.jsonl"),
    reference_window: Annotated[
        str | None,
        typer.Option(help="Take the reference from the log instead: OLDER..NEWER, e.g. 14d..7d."),
    ] = None,
    current: Annotated[
        Path | None,
        typer.Option(help="Current questions from a file instead of the log.", dir_okay=False),
    ] = None,
    window: Annotated[
        str, typer.Option(help="The current window: the log's last 24h, 7d, 2w...")
    ] = "7d",
    last: Annotated[
        int | None, typer.Option(min=1, help="The current window: the log's last N questions.")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection. Default: RAG_COLLECTION.")
    ] = None,
    # The thresholds' defaults are kit.drift.score.Thresholds' (measured there), written out
    # so that `kit --help` imports no numpy; a unit test keeps the two equal.
    max_mmd: Annotated[float, typer.Option(min=0, help="Threshold: embedding MMD^2.")] = 0.02,
    max_psi: Annotated[float, typer.Option(min=0, help="Threshold: length PSI.")] = 0.25,
    max_far_share: Annotated[
        float, typer.Option(min=0, max=1, help="Threshold: share far from the corpus.")
    ] = 0.20,
    max_refusal_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Threshold: refusal rate.")
    ] = 0.30,
    similarity: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="'Far' below this similarity. Default: RAG_MIN_RELEVANCE."),
    ] = None,
    min_queries: Annotated[
        int, typer.Option(min=2, help="Fewest questions per window worth scoring.")
    ] = 30,
    permutations: Annotated[int, typer.Option(min=10, help="Shuffles for the MMD p-value.")] = 500,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the report. Default: KIT_DATA_DIR/reports/drift.", file_okay=False
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            help="Write the gauges here (node_exporter textfile, *.prom).", dir_okay=False
        ),
    ] = None,
    pushgateway: Annotated[
        str | None, typer.Option(help="Push the gauges to this Pushgateway URL.")
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option(help=f"Exit {DRIFT_EXIT_CODE} when any score is over its threshold.")
    ] = False,
) -> None:
    """Score how far recent questions drifted from the reference (embeddings, lengths, distance
    to the corpus, refusals); export Prometheus gauges, log an MLflow run, write an HTML report."""
    from kit.core.settings import load_settings
    from kit.drift.collect import parse_duration, parse_span
    from kit.drift.corpus import require_corpus
    from kit.drift.run import DriftOptions, collect_windows, run_drift
    from kit.drift.score import Thresholds
    from kit.rag.store import open_store
    from kit.rag_service.settings import RagSettings
    from kit.runtime import open_embedder

    settings = load_settings(RagSettings, **state(ctx).overrides)
    state(ctx).settings()  # configures logging
    if log is None and current is None and settings.query_log is None:
        raise ConfigError("RAG_QUERY_LOG is off, so there is no query log: pass --log PATH.")
    options = DriftOptions(
        log=log or settings.query_log,
        reference=reference,
        reference_span=parse_span(reference_window) if reference_window else None,
        current=current,
        window=parse_duration(window),
        last=last,
        collection=collection or settings.collection,
        thresholds=Thresholds(
            mmd=max_mmd,
            psi=max_psi,
            far_share=max_far_share,
            refusal_rate=max_refusal_rate,
            similarity=settings.min_relevance if similarity is None else similarity,
        ),
        min_questions=min_queries,
        permutations=permutations,
        output_dir=output,
        metrics_file=metrics_file,
        pushgateway=pushgateway,
    )
    # Everything that can fail fast does, before the embedding model loads (seconds).
    now = datetime.now(UTC)
    windows = collect_windows(options, now)
    with open_store(settings, options.collection) as store:
        require_corpus(store)
        with open_embedder(settings) as embedder:
            result = run_drift(
                settings, options, embedder=embedder, store=store, now=now, windows=windows
            )

    table = Table(box=None, pad_edge=False)
    for column in ("check", "score", "threshold", ""):
        table.add_column(column)
    for check in result.scores.checks:
        status = "[bold red]DRIFT[/]" if check.drifted else "[green]ok[/]"
        table.add_row(check.name, f"{check.score:.4f}", f"{check.threshold:g}", status)
    console.print(table)
    console.print(
        f"{len(result.current)} current vs {len(result.reference)} reference questions, "
        f"{result.seconds:.1f}s; MMD p-value {result.scores.details['embedding_mmd_p_value']:.3f}"
    )
    console.print(f"report: {escape(str(result.report_path))}", highlight=False, soft_wrap=True)
    console.print(f"[dim]MLflow run {result.run_id} (experiment drift)[/]")
    if metrics_file is not None:
        console.print(f"[dim]metrics: {escape(str(metrics_file))}[/]", soft_wrap=True)
    if result.drifted:
        names = ", ".join(check.name for check in result.scores.drifted)
        err_console.print(f"[bold red]drift:[/] {names} over threshold")
        if fail_on_drift:
            raise typer.Exit(code=DRIFT_EXIT_CODE)
