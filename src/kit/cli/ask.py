"""`kit ask "question"`: one answer from the indexed documents, with its checked citations."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.markup import escape

from kit.cli.state import console, exits_on_kit_error, state


@exits_on_kit_error
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="What to ask.")],
    k: Annotated[int | None, typer.Option("--k", min=1, max=50, help="Chunks to retrieve.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Answer from the documents indexed by `kit ingest` (through the gateway's model)."""
    from kit.core.settings import load_settings
    from kit.rag_service.settings import RagSettings
    from kit.runtime import rag_service

    settings = load_settings(RagSettings, **state(ctx).overrides)
    state(ctx).settings()  # configures logging

    async def run() -> object:
        async with rag_service(settings) as service:
            return await service.ask(question, k=k)

    result = asyncio.run(run())
    from kit.rag_service.service import AskResult

    assert isinstance(result, AskResult)
    answer = result.answer
    if as_json:
        print(
            json.dumps(
                {
                    "answer": answer.text,
                    "refused": answer.refused,
                    "citations": [c.__dict__ for c in answer.citations],
                    "invalid_citations": answer.invalid_citations,
                    "support": answer.support,
                    "latency_ms": result.latency_ms,
                },
                indent=2,
            )
        )
        return
    console.print(answer.text, markup=False, highlight=False)
    if result.refusal_reason:
        console.print(f"[dim]refused: {escape(result.refusal_reason)}[/]")
    for citation in answer.citations:
        mark = " (inferred)" if citation.inferred else ""
        console.print(
            f"[cyan][{citation.number}][/] {escape(citation.doc_id)}{mark}: "
            f"{escape(citation.snippet[:100])}"
        )
    if answer.invalid_citations:
        console.print(f"[yellow]citations with no source, removed: {answer.invalid_citations}[/]")
    console.print(f"[dim]support {answer.support:.2f}, latency {result.latency_ms} ms[/]")
