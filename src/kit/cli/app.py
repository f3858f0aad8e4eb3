"""`kit`: the one command-line front door to every part of the kit.

Each area adds its commands in its own module under `src/kit/cli/` and is registered below,
so this file stays a table of contents. `kit --help` lists them; `kit COMMAND --help` explains one.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kit.cli import ask, drift, evaluate, finetune, gateway, ingest, models, prompts, rag, serve
from kit.cli.doctor import Status, as_json, run_checks
from kit.cli.state import CliState, console, state
from kit.core.errors import ConfigError
from kit.core.settings import LogLevel

app = typer.Typer(
    name="kit",
    help="AI engineering starter kit: local models, gateway, RAG, fine-tuning, deployment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # a traceback of ours is a bug to report, shown plainly
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models.app, name="models")
app.add_typer(serve.app, name="serve")
app.add_typer(gateway.app, name="gateway")
app.add_typer(rag.app, name="rag")
app.command("ingest")(ingest.ingest)
app.command("search")(ingest.search)
app.add_typer(evaluate.app, name="eval")
app.command("ask")(ask.ask)
app.command("finetune")(finetune.finetune)
app.command("predict")(finetune.predict)
app.add_typer(finetune.mlflow_app, name="mlflow")
app.add_typer(prompts.app, name="prompts")
app.command("drift")(drift.drift)


def _version(value: bool) -> None:
    if value:
        console.print(f"kit {importlib.metadata.version('ai-engineering-kit')}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option(
            help="Read settings from this file instead of ./.env.", exists=True, dir_okay=False
        ),
    ] = None,
    log_level: Annotated[
        LogLevel | None, typer.Option(help="Override KIT_LOG_LEVEL for this command.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    overrides = {"log_level": log_level} if log_level else {}
    ctx.obj = CliState(env_file=env_file, overrides=overrides)


_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.INFO: "cyan"}


@app.command()
def doctor(
    ctx: typer.Context,
    load: Annotated[
        bool, typer.Option(help="Load each local model and use it once (a few seconds).")
    ] = True,
    as_json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check Python, packages, local models and configured servers; say how to fix what fails."""
    settings, error = None, None
    try:
        settings = state(ctx).settings()
    except ConfigError as exc:
        error = str(exc)
    checks = run_checks(settings, error, load=load)

    if as_json_output:
        print(json.dumps(as_json(checks), indent=2))
    else:
        table = Table(show_lines=False, box=None, pad_edge=False)
        for column in ("", "area", "check", "detail", "how to fix"):
            table.add_column(column, overflow="fold")
        for check in checks:
            style = _STYLE[check.status]
            table.add_row(
                f"[{style}]{check.status.value}[/]",
                check.area,
                check.name,
                escape(check.detail),
                escape(check.fix),
            )
        console.print(table)
        failed = sum(check.status is Status.FAIL for check in checks)
        warned = sum(check.status is Status.WARN for check in checks)
        verdict = "[bold red]not ready[/]" if failed else "[green]ready[/]"
        console.print(f"\n{verdict}: {failed} failed, {warned} warnings, {len(checks)} checks")
    if any(check.status is Status.FAIL for check in checks):
        raise typer.Exit(code=1)


def main() -> None:
    app()
