"""`kit gateway ...`: operate the gateway: API keys and the models it serves."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from kit.cli.state import console, exits_on_kit_error, state
from kit.core.settings import load_settings
from kit.gateway.settings import GatewaySettings

app = typer.Typer(help="Operate the model gateway: keys and models.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@exits_on_kit_error
def create_key(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Option("--id", help="A name for the key: team, app, person.")],
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute.")] = None,
    budget: Annotated[float | None, typer.Option(min=0, help="Total USD budget.")] = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="Keys of one tenant share cached answers (default: the key's id)."),
    ] = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option(min=1, help="Requests in flight at once (default GATEWAY_MAX_CONCURRENT)."),
    ] = None,
) -> None:
    """Create a key and print it once; only its SHA-256 is stored."""
    from kit.gateway.auth import add_key

    settings = load_settings(GatewaySettings, **state(ctx).overrides)
    path = settings.resolved_keys_file
    key = add_key(
        path,
        key_id,
        rpm=rpm,
        tpm=tpm,
        budget_usd=budget,
        tenant=tenant,
        max_concurrent=max_concurrent,
    )
    console.print(f"Created key [bold]{key_id}[/] in {path}. Store it now; it is not shown again:")
    print(key)


@keys_app.command("list")
@exits_on_kit_error
def list_keys(ctx: typer.Context) -> None:
    """List key ids with their limits (never the keys)."""
    from kit.gateway.auth import load_keys

    settings = load_settings(GatewaySettings, **state(ctx).overrides)
    table = Table(box=None, pad_edge=False)
    for column in ("id", "tenant", "rpm", "tpm", "budget (USD)", "concurrent"):
        table.add_column(column)
    for key in load_keys(settings.resolved_keys_file):
        limits = (key.rpm, key.tpm, key.budget_usd, key.max_concurrent)
        table.add_row(key.id, key.tenant_id, *(str(value or "-") for value in limits))
    console.print(table)


@keys_app.command("revoke")
@exits_on_kit_error
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The id of the key to remove.")],
) -> None:
    """Remove a key. A running gateway reading this file refuses it within about a second."""
    from kit.gateway.auth import revoke_key

    settings = load_settings(GatewaySettings, **state(ctx).overrides)
    revoke_key(settings.resolved_keys_file, key_id)
    console.print(f"Revoked [bold]{key_id}[/] in {settings.resolved_keys_file}.")


@app.command("models")
@exits_on_kit_error
def models(ctx: typer.Context) -> None:
    """Show each alias's fallback chain, and which deployments are off and why."""
    from kit.gateway.config import load_models

    settings = load_settings(GatewaySettings, **state(ctx).overrides)
    resolved = load_models(settings.models_file, os.environ)
    table = Table(box=None, pad_edge=False)
    table.add_column("alias")
    table.add_column("fallback chain (enabled deployments, in order)")
    for alias, chain in resolved.chains.items():
        marker = " (default)" if alias == resolved.default_model else ""
        table.add_row(alias + marker, " -> ".join(d.name for d in chain))
    console.print(table)
    for name, why in resolved.disabled.items():
        console.print(f"[dim]off: {name} ({why})[/]")


@app.command("chat")
@exits_on_kit_error
def chat(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[
        str | None, typer.Option(help="A model alias (default: the gateway's).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, max=4096)] = 128,
) -> None:
    """Ask through the gateway: GATEWAY_URL if set, else a gateway started in this process."""
    from kit.runtime import connect_gateway

    settings = state(ctx).settings()
    where = str(settings.gateway_url) if settings.gateway_url else "embedded gateway"
    with connect_gateway(settings) as client:
        for piece in client.stream_chat(
            [{"role": "user", "content": prompt}], model=model, max_tokens=max_tokens
        ):
            console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    console.print(f"\n[dim]via {where}[/]")
