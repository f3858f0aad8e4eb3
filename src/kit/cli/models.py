"""`kit models ...`: the models that ship with the kit, used directly, in this process.

kit models list                         what ships, where it is, its license
kit models chat "What is RAG?"          one answer from SmolLM2 (streamed as it is generated)
kit models embed "cat" "kitten" "tax"   vectors and their cosine similarities
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kit.cli.state import console, exits_on_kit_error, state
from kit.core.errors import KitError
from kit.core.ports import ChatMessage
from kit.llm.local_client import LocalClient
from kit.llm.local_models import MINILM, SMOLLM2, available_engines

app = typer.Typer(
    help="Use the models that ship with the kit (no server, no key, no network).",
    no_args_is_help=True,
)


@app.command("list")
def list_models() -> None:
    """Show the shipped models and whether their weights are installed."""
    table = Table(box=None, pad_edge=False)
    for column in ("model", "task", "package", "license", "weights"):
        table.add_column(column, overflow="fold")
    for model, task in ((SMOLLM2, "chat"), (MINILM, "embeddings")):
        try:
            where = str(model.path())
        except KitError as exc:
            where = f"[red]{escape(str(exc))}[/]"
        table.add_row(model.name, task, model.package, model.license, where)
    console.print(table)
    console.print(f"chat engines installed: {', '.join(available_engines()) or 'none'}")


@app.command()
@exits_on_kit_error
def chat(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, max=2048)] = 128,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.0,
    stream: Annotated[bool, typer.Option(help="Print the answer as it is generated.")] = True,
) -> None:
    """Ask SmolLM2-135M-Instruct one question. Small and fast, not wise: a demo of the mechanics."""
    client = LocalClient(state(ctx).settings())
    messages: list[ChatMessage] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})

    engine = client.chat_engine  # load first, so the timing below is generation only
    started = time.perf_counter()
    if stream:
        pieces = []
        for piece in client.stream_chat(messages, max_tokens=max_tokens, temperature=temperature):
            pieces.append(piece)
            console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
        console.print()
        tokens = len(pieces)
    else:
        result = client.chat(messages, max_tokens=max_tokens, temperature=temperature)
        console.print(result.text, markup=False, highlight=False)
        tokens = result.usage.completion_tokens
    seconds = time.perf_counter() - started
    console.print(
        f"[dim]{engine.model_name} via {engine.engine}: {tokens} tokens in {seconds:.2f}s "
        f"({tokens / seconds:.0f} tokens/s), model loaded in {engine.load_seconds:.2f}s[/]"
    )


@app.command()
@exits_on_kit_error
def embed(
    ctx: typer.Context,
    texts: Annotated[list[str], typer.Argument(help="One or more texts.")],
    as_json_output: Annotated[
        bool, typer.Option("--json", help="Print the vectors as JSON.")
    ] = False,
) -> None:
    """Embed texts with all-MiniLM-L6-v2 and show how similar they are (cosine, -1 to 1)."""
    embedder = LocalClient(state(ctx).settings()).embedder
    vectors: list[list[float]] = embedder.embed(texts).tolist()
    if as_json_output:
        print(json.dumps({"model": MINILM.name, "vectors": vectors}))
        return
    console.print(f"{len(vectors)} vectors of {len(vectors[0])} dimensions ({MINILM.name})")
    table = Table(box=None, pad_edge=False, title="cosine similarity")
    table.add_column("")
    for text in texts:
        table.add_column(escape(text[:20]), justify="right")
    for text, row in zip(texts, vectors, strict=True):
        # Unit vectors, so the dot product is the cosine of the angle between them.
        cells = [f"{sum(a * b for a, b in zip(row, other, strict=True)):.2f}" for other in vectors]
        table.add_row(escape(text[:20]), *cells)
    console.print(table)
