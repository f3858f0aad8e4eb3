"""`kit finetune`, `kit predict` and `kit mlflow ui`: train, use and inspect intent models.

kit finetune --config pipelines/finetune/configs/default.yaml   # train, track, register, gate
kit predict "my card still has not arrived"                     # the champion's label
kit mlflow ui                                                   # browse runs and the registry
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from services.cli.state import console, err_console, exits_on_kit_error, state
from services.common.errors import ConfigError

DEFAULT_CONFIG = Path("pipelines/finetune/configs/default.yaml")


@exits_on_kit_error
def finetune(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(help="A YAML config.")] = DEFAULT_CONFIG,
) -> None:
    """Fine-tune an intent model on BANKING77 as one MLflow run, register it, and promote it
    to `champion` only if it beats the current champion on the same test split."""
    from pipelines import tracking
    from pipelines.finetune.config import load_config
    from pipelines.finetune.run import EXPERIMENT, run_finetune

    parsed = load_config(config)  # a bad config fails here, before anything loads
    settings = state(ctx).settings()
    result = run_finetune(
        parsed, settings, config_path=config, progress=lambda line: console.print(f"[dim]{line}[/]")
    )
    decision = result.decision
    console.print(
        f"test accuracy {result.test.accuracy:.4f}, macro-F1 {result.test.macro_f1:.4f} "
        f"({result.test.rows} queries, {result.test.latency_ms:.2f} ms/query)\n"
        f"trained in {result.train_seconds:.0f}s, peak memory {result.peak_memory_mb:.0f} MB\n"
        f"registered {parsed.registry.model_name} v{decision.version} as "
        f"[bold]{decision.alias}[/]: {decision.reason}\n"
        f"[dim]MLflow run {result.run_id[:8]} in experiment {EXPERIMENT} at "
        f"{tracking.tracking_uri(settings)}[/]"
    )


@exits_on_kit_error
def predict(
    ctx: typer.Context,
    texts: Annotated[list[str], typer.Argument(help="One or more customer queries.")],
    model: Annotated[
        str, typer.Option(help="A registry URI: models:/NAME@ALIAS or models:/NAME/VERSION.")
    ] = "models:/intent-router@champion",
) -> None:
    """Label queries with a registered intent model (the one the gateway serves)."""
    from mlflow.exceptions import MlflowException

    from pipelines import tracking

    settings = state(ctx).settings()
    mlflow = tracking.start(settings, "finetune-intent")
    try:
        loaded = mlflow.pyfunc.load_model(model)
    except MlflowException as exc:
        raise ConfigError(
            f"{model} is not in the registry at {tracking.tracking_uri(settings)} ({exc}). "
            "Train one first: kit finetune --config pipelines/finetune/configs/default.yaml"
        ) from None
    for text, label in zip(texts, loaded.predict(list(texts)), strict=True):
        print(f"{label}\t{text}")  # plain tab-separated lines, for people and for scripts


mlflow_app = typer.Typer(help="MLflow, on the kit's tracking store.", no_args_is_help=True)


@mlflow_app.command("ui")
@exits_on_kit_error
def mlflow_ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 5000,
    host: Annotated[str, typer.Option(help="0.0.0.0 to reach it from elsewhere.")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on the local store (runs, metrics, artifacts, the model registry)."""
    from pipelines import tracking

    settings = state(ctx).settings()
    if settings.mlflow_tracking_uri and settings.mlflow_tracking_uri.startswith("http"):
        console.print(f"MLFLOW_TRACKING_URI is a server: open {settings.mlflow_tracking_uri}")
        return
    settings.ensure_dirs()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        tracking.tracking_uri(settings),
        "--default-artifact-root",
        (settings.data_dir / "mlartifacts").as_uri(),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",  # ENVIRONMENT.md: the default worker count needs ~3.6 GB
    ]
    env = os.environ | {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    err_console.print(f"MLflow UI on http://{host}:{port} (Ctrl-C to stop)")
    # Become the server (exec), so Ctrl-C and a supervisor's SIGTERM reach it directly and no
    # orphaned server outlives this command.
    os.execve(command[0], command, env)  # noqa: S606 - our own arguments
