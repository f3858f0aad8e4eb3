"""`kit prompts`: the prompt files, registered in MLflow's prompt registry.

kit prompts push --alias production     # each changed file becomes a new version; alias moved
kit prompts alias answer-v2 production 3 # point an alias at a version (a rollback is this too)
kit prompts list                         # every version, its aliases and its digest

The files stay the source of truth in git: src/kit/rag/prompts/ (the RAG answer prompts) and
src/kit/evaluate/prompts/ (the judge). The RAG service loads a registered version with
RAG_PROMPT=prompts:/answer-v2@production; traces and `kit eval answers` runs record which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kit.cli.state import console, exits_on_kit_error, state

app = typer.Typer(help="Push the prompt files to MLflow's prompt registry; move aliases.")


def prompt_files() -> list[Path]:
    """Every prompt file the registry holds: the RAG answer prompts, then the judge's."""
    from kit.evaluate.judge import PROMPTS as JUDGE_PROMPTS
    from kit.rag.answer import PROMPTS as ANSWER_PROMPTS

    return sorted(ANSWER_PROMPTS.glob("*.yaml")) + sorted(JUDGE_PROMPTS.glob("*.yaml"))


@app.command("push")
@exits_on_kit_error
def push(
    ctx: typer.Context,
    alias: Annotated[
        str | None, typer.Option(help="Point this alias (production, staging) at each version.")
    ] = None,
) -> None:
    """Register each prompt file whose text changed since its latest version."""
    from kit.core import prompt_registry

    settings = state(ctx).settings()
    for path in prompt_files():
        source = f"{path.parent.parent.name}/{path.parent.name}/{path.name}"  # rag/prompts/...
        registered, created = prompt_registry.push(
            settings, path.stem, path.read_text(encoding="utf-8"), source=source, alias=alias
        )
        what = "registered" if created else "unchanged "
        pointer = f" <- @{alias}" if alias else ""
        console.print(f"{what} {registered.uri}{pointer}")


@app.command("alias")
@exits_on_kit_error
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt (a file's name: answer-v2).")],
    alias: Annotated[str, typer.Argument(help="The alias: production, staging, ...")],
    version: Annotated[int, typer.Argument(min=1, help="The version it points to.")],
) -> None:
    """Point an alias at a version; services that load NAME@ALIAS take it when they start."""
    from kit.core import prompt_registry

    prompt_registry.set_alias(state(ctx).settings(), name, alias, version)
    console.print(f"prompts:/{name}@{alias} -> prompts:/{name}/{version}")


@app.command("list")
@exits_on_kit_error
def list_(ctx: typer.Context) -> None:
    """Every registered version, with its aliases."""
    from kit.core import prompt_registry

    table = Table(box=None, pad_edge=False)
    for column in ("prompt", "version", "aliases", "digest"):
        table.add_column(column)
    for registered, aliases in prompt_registry.list_versions(state(ctx).settings()):
        table.add_row(
            registered.name,
            str(registered.version),
            ", ".join(aliases),
            registered.digest[:12],
        )
    console.print(table)
