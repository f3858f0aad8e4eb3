"""`kit eval rag`: measure retrieval on a labelled question set, log it to MLflow, gate on it.

kit eval rag --questions data/rag/fastapi-docs-questions.jsonl --k 5 --min-hit-rate 0.9
kit eval rag --mode dense --mode keyword --mode hybrid      # compare, one MLflow run each
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.table import Table

from kit.cli.state import console, err_console, exits_on_kit_error, state, traced
from kit.core.errors import ConfigError
from kit.core.ports import ChatMessage
from kit.core.settings import KitSettings

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
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection. Default: RAG_COLLECTION (docs).")
    ] = None,
    min_hit_rate: Annotated[float | None, typer.Option(help="Gate: exit 1 below this.")] = None,
    min_mrr: Annotated[float | None, typer.Option(help="Gate: exit 1 below this.")] = None,
    rerank_model: Annotated[
        str | None, typer.Option(help="A cross-encoder (folder or name) to rerank with.")
    ] = None,
) -> None:
    """Hit rate@k, recall@k, MRR and nDCG@k by document id, per retrieval mode."""
    from kit.core import tracking
    from kit.evaluate.rag import evaluate_retrieval, load_questions, log_to_mlflow
    from kit.rag.rerank import load_reranker
    from kit.rag.retrieval import Mode, Retriever
    from kit.rag.store import open_store
    from kit.runtime import open_embedder

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
    mlflow = tracking.start(settings, "rag-retrieval")
    failures: list[str] = []
    table = Table(box=None, pad_edge=False)
    for column in ("mode", f"hit@{k}", f"recall@{k}", "MRR", f"nDCG@{k}", "p50 ms", "run"):
        table.add_column(column)
    with traced(settings, "eval rag"), open_store(settings, collection) as store:
        if not store.count():
            raise ConfigError(f"Collection {store.collection!r} is empty; run `kit ingest` first.")
        with open_embedder(settings) as embedder:
            store.check_collection(embedder.name)
            reranker = load_reranker(rerank_model)
            retriever = Retriever(
                store, embedder.embed, reranker=reranker, embed_model=embedder.name
            )
            for name in modes:
                result = evaluate_retrieval(retriever, question_set, k=k, mode=cast(Mode, name))
                run_id = log_to_mlflow(
                    mlflow,
                    result,
                    {
                        "collection": store.collection,
                        "embedder": embedder.name,
                        "reranker": reranker.name if reranker else "none",
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
                failures += [f"{name}: {fail}" for fail in result.passes(min_hit_rate, min_mrr)]
    console.print(table)
    console.print(f"[dim]MLflow: {tracking.tracking_uri(settings)} (experiment rag-retrieval)[/]")
    if failures:
        for failure in failures:
            err_console.print(f"[bold red]below the bar:[/] {failure}")
        raise typer.Exit(code=1)


@app.command("answers")
@exits_on_kit_error
def answers(
    ctx: typer.Context,
    questions: Annotated[Path, typer.Option(help="JSONL question set.")] = DEFAULT_QUESTIONS,
    limit: Annotated[int, typer.Option(min=1, help="Answerable questions to ask.")] = 20,
    judge: Annotated[
        str | None,
        typer.Option(help="A capable gateway alias that judges faithfulness (e.g. gpt-4o-mini)."),
    ] = None,
    from_traces: Annotated[
        bool,
        typer.Option(
            "--from-traces",
            help="Score the latest LIMIT answers the RAG service gave, from their traces "
            "(KIT_TRACE_EXPERIMENT), instead of asking the question set.",
        ),
    ] = False,
) -> None:
    """Ask the RAG service every unanswerable question and the first LIMIT answerable ones;
    report citation validity, support, refusal rates and latency as an MLflow run. With
    --from-traces, score answers already given instead (kit.evaluate.traces)."""
    import asyncio

    from kit.core import tracking
    from kit.core.settings import load_settings
    from kit.evaluate.answers import AnswerEval, evaluate_answers
    from kit.evaluate.judge import Judge, load_judge_prompt
    from kit.evaluate.rag import load_questions
    from kit.rag.answer import choose_prompt
    from kit.rag_service.settings import RagSettings
    from kit.runtime import rag_service

    if judge in ("local", "smollm2-135m-instruct"):
        err_console.print(
            "[yellow]A 135M model is not a judge; its verdicts are noise. Use a cloud alias "
            "(--judge gpt-4o-mini with OPENAI_API_KEY set).[/]"
        )
    if from_traces:
        state(ctx).settings()  # configures logging
        _score_traces(load_settings(RagSettings, **state(ctx).overrides), limit, judge)
        return
    if not questions.exists():
        raise ConfigError(f"Question set {questions} not found; pass --questions PATH.")
    question_set = load_questions(questions)
    sample = [q for q in question_set if not q.relevant] + [q for q in question_set if q.relevant][
        :limit
    ]
    settings = load_settings(RagSettings, **state(ctx).overrides)
    state(ctx).settings()  # configures logging

    async def run() -> AnswerEval:
        async with rag_service(settings) as service:
            judging = None
            if judge is not None:
                llm = service.llm

                async def chat(messages: list[ChatMessage]) -> str:
                    return (await llm.achat(messages, model=judge, max_tokens=800)).text

                judging = Judge(chat, load_judge_prompt(), judge)
            return await evaluate_answers(service.ask, sample, judging)

    chosen = choose_prompt(settings.prompt, settings)
    with traced(settings):  # one trace per question, as the RAG service makes them
        result = asyncio.run(run())
    mlflow = tracking.start(settings, "rag-answers")
    with mlflow.start_run(run_name=f"answers-{settings.model}-{settings.prompt}") as run_info:
        mlflow.log_params(
            {
                "model": settings.model,
                "prompt": settings.prompt,
                "prompt_digest": chosen.template.digest,
                "prompt_uri": chosen.uri or "file",
                "k": settings.k,
                "mode": settings.mode,
                "min_relevance": settings.min_relevance,
                "questions": len(sample),
                "judge": judge or "none",
                "judge_prompt": load_judge_prompt().name if judge else "none",
            }
        )
        if chosen.uri is not None:  # the run's page links to the registered version
            mlflow.MlflowClient().link_prompt_version_to_run(run_info.info.run_id, chosen.uri)
        mlflow.log_metrics(result.metrics)
        mlflow.log_table(
            data={k: [row[k] for row in result.rows] for k in result.rows[0]},
            artifact_file="answers.json",
        )
    for name, value in result.metrics.items():
        console.print(f"{name:28} {value:8.3f}")
    console.print(f"[dim]MLflow run {run_info.info.run_id[:8]} (experiment rag-answers)[/]")


def _score_traces(settings: KitSettings, limit: int, judge: str | None) -> None:
    """`kit eval answers --from-traces`: MLflow's evaluator over recorded answers."""
    import asyncio

    from kit.core import tracking
    from kit.evaluate.judge import Judge, load_judge_prompt
    from kit.evaluate.traces import answer_scorers, search_answer_traces
    from kit.runtime import connect_gateway

    mlflow = tracking.start(settings, "rag-answers")
    traces, others = search_answer_traces(mlflow, settings.trace_experiment, limit)
    if traces is None or traces.empty:
        raise ConfigError(
            f"No traces of answered questions in experiment {settings.trace_experiment!r} at "
            f"{tracking.tracking_uri(settings)}. Serve questions with tracing on "
            "(KIT_TRACE_EXPORTER=auto or mlflow; KIT_TRACE_CONTENT=true for the judge), "
            "then run this again."
        )
    with ExitStack() as stack:
        judging = None
        if judge is not None:
            client = stack.enter_context(connect_gateway(settings))

            async def chat(messages: list[ChatMessage]) -> str:
                # The blocking call, in a thread: MLflow runs each scorer in its own event
                # loop, and the async client's connections belong to the loop that made them.
                result = await asyncio.to_thread(client.chat, messages, model=judge, max_tokens=800)
                return result.text

            judging = Judge(chat, load_judge_prompt(), judge)
        with mlflow.start_run(run_name=f"traces-{len(traces)}") as run_info:
            mlflow.log_params(
                {
                    "source": f"traces of {settings.trace_experiment}",
                    "traces": len(traces),
                    "judge": judge or "none",
                    "judge_prompt": load_judge_prompt().name if judge else "none",
                }
            )
            result = mlflow.genai.evaluate(data=traces, scorers=answer_scorers(judging))
    console.print(f"scored {len(traces)} answers ({others} other traces passed over)")
    for name, value in sorted(result.metrics.items()):
        console.print(f"{name:28} {float(value):8.3f}")
    console.print(
        f"[dim]MLflow run {run_info.info.run_id[:8]} (experiment rag-answers): its Traces tab "
        "shows each answer with its scores[/]"
    )


@app.command("draft-questions")
@exits_on_kit_error
def draft_questions(
    ctx: typer.Context,
    corpus: Annotated[Path, typer.Argument(help="Folder of documents to write questions about.")],
    output: Annotated[Path, typer.Option(help="JSONL file to write the drafts to.")],
    model: Annotated[str, typer.Option(help="A capable gateway model alias.")] = "gpt-4o-mini",
    sample: Annotated[int, typer.Option(min=1, help="Documents to sample.")] = 20,
    per_document: Annotated[int, typer.Option(min=1, max=10)] = 2,
) -> None:
    """Draft questions with an LLM (through the gateway) for a person to review."""
    import asyncio
    import json

    from kit.evaluate.draft import draft_questions as draft
    from kit.rag.documents import Document
    from kit.rag.loaders import load_file
    from kit.rag.paths import DocsRoot, discover
    from kit.runtime import connect_gateway

    settings = state(ctx).settings()
    root = DocsRoot.at(settings.docs_root)  # drafts name documents by the ids ingestion gives
    documents = [
        d
        for found in discover([corpus], root)
        if isinstance(found, Path)
        for d in load_file(found, root.path)
        if isinstance(d, Document)
    ]
    if not documents:
        raise ConfigError(f"No documents found under {corpus}.")
    with connect_gateway(settings) as client:
        if model in ("local", "smollm2-135m-instruct"):
            err_console.print(
                "[yellow]A 135M model cannot write good questions; use a cloud "
                "alias (--model gpt-4o-mini with OPENAI_API_KEY set).[/]"
            )

        async def chat(messages: list[ChatMessage]) -> str:
            return (
                await asyncio.to_thread(
                    client.chat, messages, model=model, max_tokens=400, temperature=0.7
                )
            ).text

        drafts = asyncio.run(draft(chat, documents, per_document=per_document, sample=sample))
    output.write_text("".join(json.dumps(row) + "\n" for row in drafts))
    console.print(f"Wrote {len(drafts)} drafted questions to {output}; review them before use.")


@app.command("intents")
@exits_on_kit_error
def intents(
    ctx: typer.Context,
    prompt_sample: Annotated[
        int, typer.Option(min=0, help="Test queries for the prompt baselines (0: skip them).")
    ] = 200,
    cloud_model: Annotated[
        str | None, typer.Option(help="A cloud gateway alias to compare (e.g. gpt-4o-mini).")
    ] = None,
    seed: Annotated[int, typer.Option(help="The split seed (the fine-tune configs use 0).")] = 0,
) -> None:
    """Intent-routing baselines on BANKING77, each an MLflow run beside the fine-tunes:
    frozen MiniLM + logistic regression and kNN, zero- and few-shot prompts."""

    from kit.core import tracking
    from kit.finetune.baselines import log_baselines, run_baselines
    from kit.finetune.config import DataSpec
    from kit.finetune.data import load_splits
    from kit.finetune.run import EXPERIMENT
    from kit.gateway.pricing import Pricing
    from kit.llm.local_models import load_embedder
    from kit.runtime import connect_gateway

    settings = state(ctx).settings()
    splits = load_splits(DataSpec(), seed)
    price = (0.0, 0.0)
    if cloud_model:
        known = Pricing().for_model(cloud_model)
        if known is None:
            err_console.print(f"[yellow]No price known for {cloud_model}; cost shows $0.[/]")
        price = known or price
    with ExitStack() as stack:
        client = stack.enter_context(connect_gateway(settings)) if prompt_sample > 0 else None
        results = run_baselines(
            splits,
            load_embedder(settings),
            client,
            cloud_model=cloud_model,
            cloud_price=price,
            prompt_sample=prompt_sample,
            seed=seed,
            progress=lambda line: console.print(f"[dim]{line}[/]"),
        )
    log_baselines(tracking.start(settings, EXPERIMENT), results, splits)
    table = Table(box=None, pad_edge=False)
    for column in ("baseline", "accuracy", "macro-F1", "train s", "ms/query", "$/1k", "rows"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.name,
            f"{r.scores.accuracy:.4f}",
            f"{r.scores.macro_f1:.4f}",
            f"{r.train_seconds:.0f}",
            f"{r.scores.latency_ms:.1f}",
            f"{r.cost_per_1k:.4f}",
            str(r.scores.rows),
        )
    console.print(table)
