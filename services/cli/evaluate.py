"""`kit eval rag`: measure retrieval on a labelled question set, log it to MLflow, gate on it.

kit eval rag --questions data/rag/fastapi-docs-questions.jsonl --k 5 --min-hit-rate 0.9
kit eval rag --mode dense --mode keyword --mode hybrid      # compare, one MLflow run each
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.table import Table

from services.cli.state import console, err_console, exits_on_kit_error, state
from services.common.errors import ConfigError

app = typer.Typer(
    help="Evaluate the kit's pipelines; every evaluation is an MLflow run.", no_args_is_help=True
)

DEFAULT_QUESTIONS = Path("data/rag/fastapi-docs-questions.jsonl")


@app.command("rag")
@exits_on_kit_error
def rag(
    ctx: typer.Context,
    questions: Annotated[Path, typer.Option(help="JSONL question set.")] = DEFAULT_QUESTIONS,
    k: Annotated[int, typer.Option("--k", min=1, max=50)] = 5,
    mode: Annotated[
        list[str] | None, typer.Option(help="hybrid, dense, keyword; repeatable.")
    ] = None,
    collection: Annotated[str, typer.Option(help="Qdrant collection.")] = "docs",
    min_hit_rate: Annotated[float | None, typer.Option(help="Gate: exit 1 below this.")] = None,
    min_mrr: Annotated[float | None, typer.Option(help="Gate: exit 1 below this.")] = None,
) -> None:
    """Hit rate@k, recall@k, MRR and nDCG@k by document id, per retrieval mode."""
    from pipelines import tracking
    from pipelines.evaluate.rag import evaluate_retrieval, load_questions, log_to_mlflow
    from pipelines.ingest.index import ChunkStore, open_client
    from pipelines.retrieval import Mode, Retriever
    from services.common.local_models import MINILM, load_embedder

    modes = mode or ["hybrid"]
    if unknown := set(modes) - {"hybrid", "dense", "keyword"}:
        raise ConfigError(f"--mode {sorted(unknown)}: use hybrid, dense or keyword")
    if not questions.exists():
        raise ConfigError(f"Question set {questions} not found; pass --questions PATH.")
    try:
        question_set = load_questions(questions)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    settings = state(ctx).settings()
    store = ChunkStore(open_client(settings), collection)
    mlflow = tracking.start(settings, "rag-retrieval")
    failures: list[str] = []
    table = Table(box=None, pad_edge=False)
    for column in ("mode", f"hit@{k}", f"recall@{k}", "MRR", f"nDCG@{k}", "p50 ms", "run"):
        table.add_column(column)
    try:
        if not store.count():
            raise ConfigError(f"Collection {collection!r} is empty; run `kit ingest` first.")
        retriever = Retriever(store, load_embedder(settings).embed)
        for name in modes:
            result = evaluate_retrieval(retriever, question_set, k=k, mode=cast(Mode, name))
            run_id = log_to_mlflow(
                mlflow,
                result,
                {
                    "collection": collection,
                    "embedder": MINILM.name,
                    "questions_file": str(questions),
                    "chunks_in_collection": store.count(),
                },
            )
            m = result.metrics
            table.add_row(
                name,
                f"{m[f'hit_rate_at_{k}']:.3f}",
                f"{m[f'recall_at_{k}']:.3f}",
                f"{m['mrr']:.3f}",
                f"{m[f'ndcg_at_{k}']:.3f}",
                f"{m['latency_p50_ms']:.1f}",
                run_id[:8],
            )
            failures += [f"{name}: {failure}" for failure in result.passes(min_hit_rate, min_mrr)]
    finally:
        store.close()
    console.print(table)
    console.print(f"[dim]MLflow: {tracking.tracking_uri(settings)} (experiment rag-retrieval)[/]")
    if failures:
        for failure in failures:
            err_console.print(f"[bold red]below the bar:[/] {failure}")
        raise typer.Exit(code=1)
