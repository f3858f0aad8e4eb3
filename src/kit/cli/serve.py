"""`kit serve gateway`: run a service under uvicorn, the same command a container runs."""

from __future__ import annotations

from typing import Annotated

import typer

from kit.cli.state import exits_on_kit_error, state

app = typer.Typer(help="Run a service (gateway, rag) in the foreground.", no_args_is_help=True)


@app.command()
@exits_on_kit_error
def gateway(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Overrides GATEWAY_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides GATEWAY_PORT.")] = None,
) -> None:
    """The OpenAI-compatible model gateway (GET /docs for its API)."""
    import uvicorn

    from kit.core.settings import load_settings
    from kit.gateway.app import create_app
    from kit.gateway.settings import GatewaySettings

    root = state(ctx)
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(GatewaySettings, **root.overrides, **overrides)
    app = create_app(settings)
    # One worker process: the local model lives in memory once; scale out with replicas.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


@app.command()
@exits_on_kit_error
def rag(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Overrides RAG_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides RAG_PORT.")] = None,
) -> None:
    """The RAG service: POST /ask answers from the indexed documents (GET /docs for its API)."""
    import uvicorn

    from kit.core.settings import load_settings
    from kit.rag_service.settings import RagSettings
    from kit.runtime import rag_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(RagSettings, **state(ctx).overrides, **overrides)
    uvicorn.run(
        rag_app(settings),  # with the models the settings name (src/kit/runtime.py)
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
