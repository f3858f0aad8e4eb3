"""`kit rag keys ...`: who may call the RAG service (`kit serve rag`).

kit rag keys create --id web-app           # may ask (POST /ask)
kit rag keys create --id ops --admin       # may also ingest (POST /ingest, GET /ingest/{id})
kit rag keys list
kit rag keys revoke web-app                # a running service refuses it within about a second
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from kit.cli.state import console, exits_on_kit_error, state
from kit.core.settings import load_settings
from kit.rag_service.settings import RagSettings

app = typer.Typer(help="Operate the RAG service: its API keys.", no_args_is_help=True)
keys_app = typer.Typer(
    help="RAG API keys (stored hashed in RAG_KEYS_FILE; a key is shown once).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@exits_on_kit_error
def create_key(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Option("--id", help="A name for the key: team, app, person.")],
    admin: Annotated[
        bool, typer.Option("--admin", help="Also allow POST /ingest (reads files, prunes).")
    ] = False,
) -> None:
    """Create a key and print it once; only its SHA-256 is stored."""
    from kit.rag_service.auth import add_key

    settings = load_settings(RagSettings, **state(ctx).overrides)
    path = settings.resolved_keys_file
    key = add_key(path, key_id, admin=admin)
    scopes = "ask and ingest" if admin else "ask"
    console.print(
        f"Created key [bold]{key_id}[/] ({scopes}) in {path}. Store it now; it is not shown again:"
    )
    print(key)


@keys_app.command("list")
@exits_on_kit_error
def list_keys(ctx: typer.Context) -> None:
    """List key ids with their scopes (never the keys)."""
    from kit.rag_service.auth import load_keys

    settings = load_settings(RagSettings, **state(ctx).overrides)
    table = Table(box=None, pad_edge=False)
    table.add_column("id")
    table.add_column("scopes")
    for key in load_keys(settings.resolved_keys_file):
        table.add_row(key.id, ", ".join(key.scopes))
    console.print(table)


@keys_app.command("revoke")
@exits_on_kit_error
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The id of the key to remove.")],
) -> None:
    """Remove a key. A running RAG service reading this file refuses it within about a second."""
    from kit.rag_service.auth import revoke_key

    settings = load_settings(RagSettings, **state(ctx).overrides)
    revoke_key(settings.resolved_keys_file, key_id)
    console.print(f"Revoked [bold]{key_id}[/] in {settings.resolved_keys_file}.")
