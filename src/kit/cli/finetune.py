"""`kit finetune`, `kit predict` and `kit mlflow ui`: train, use and inspect intent models.

kit finetune --config pipelines/finetune/configs/default.yaml   # train, track, register, gate
kit predict "my card still has not arrived"                     # the champion's label
kit mlflow ui                                                   # browse runs and the registry

`kit predict` loads the model as the gateway does (src/kit/finetune/trusted.py: verified, no
code from the registry run). `kit mlflow ui` listens on 127.0.0.1; on any other address it
starts only with MLflow's basic-auth app configured, because whoever can write to the registry
decides what the gateway serves.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from kit.cli.state import console, err_console, exits_on_kit_error, state, traced
from kit.core.errors import ConfigError

DEFAULT_CONFIG = Path("pipelines/finetune/configs/default.yaml")


@exits_on_kit_error
def finetune(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(help="A YAML config.")] = DEFAULT_CONFIG,
) -> None:
    """Fine-tune an intent model on BANKING77 as one MLflow run, register it, and promote it
    to `champion` only if it beats the current champion on the same test split."""
    from kit.core import tracking
    from kit.finetune.config import load_config
    from kit.finetune.run import EXPERIMENT, run_finetune

    parsed = load_config(config)  # a bad config fails here, before anything loads
    settings = state(ctx).settings()
    with traced(settings, "finetune", **{"kit.finetune.config": str(config)}):
        result = run_finetune(
            parsed,
            settings,
            config_path=config,
            progress=lambda line: console.print(f"[dim]{line}[/]"),
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
    """Label queries with a registered intent model (the one the gateway serves), loaded and
    verified as the gateway loads it."""
    from mlflow.exceptions import MlflowException

    from kit.core import tracking
    from kit.finetune.trusted import load_uri

    settings = state(ctx).settings()
    tracking.start(settings, "finetune-intent")
    store = tracking.tracking_uri(settings)
    try:
        _, loaded = load_uri(model, store, settings)  # refused: UntrustedModelError, exit 1
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except MlflowException as exc:
        raise ConfigError(
            f"{model} is not in the registry at {store} ({exc}). "
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
    host: Annotated[
        str, typer.Option(help="Any address but loopback needs --auth-config.")
    ] = "127.0.0.1",
    auth_config: Annotated[
        Path | None,
        typer.Option(
            envvar="MLFLOW_AUTH_CONFIG_PATH",
            help="MLflow basic-auth ini file: users and passwords are required.",
        ),
    ] = None,
) -> None:
    """Open the MLflow UI on the local store (runs, metrics, artifacts, the model registry)."""
    from kit.core import tracking

    settings = state(ctx).settings()
    if settings.mlflow_tracking_uri and settings.mlflow_tracking_uri.startswith("http"):
        console.print(f"MLFLOW_TRACKING_URI is a server: open {settings.mlflow_tracking_uri}")
        return
    if not is_loopback(host):
        err_console.print(
            f"[bold yellow]warning:[/] MLflow on {host}:{port} can be reached from other "
            "machines. Whoever can write to it registers models and moves `champion`; the "
            "gateway serves only models `kit finetune` packaged, but runs, metrics and "
            "artifacts would be open."
            + (" Basic auth sends passwords in clear: put TLS in front." if auth_config else ""),
            highlight=False,
        )
        if auth_config is None:
            raise ConfigError(
                f"Refusing to serve MLflow on {host} without authentication. "
                f"{AUTH_HOW_TO} Or keep the default --host 127.0.0.1."
            )
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
        "1",  # the default worker count took ~3.6 GB here (measured), one ~575 MB
    ]
    env = os.environ | {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    if auth_config is not None:
        check_auth_config(auth_config)
        command += ["--app-name", "basic-auth"]
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config.resolve())
    err_console.print(
        f"MLflow UI on http://{host}:{port}"
        + (" (basic auth)" if auth_config else "")
        + " (Ctrl-C to stop)"
    )
    # Become the server (exec), so Ctrl-C and a supervisor's SIGTERM reach it directly and no
    # orphaned server outlives this command.
    os.execve(command[0], command, env)  # noqa: S606 - our own arguments


AUTH_HOW_TO = (
    "Configure MLflow's basic-auth app: write an ini file with an [mlflow] section "
    "(default_permission = READ, database_uri = sqlite:///PATH/mlflow-auth.db, "
    "admin_username = admin) and pass it with --auth-config FILE or MLFLOW_AUTH_CONFIG_PATH; "
    "set MLFLOW_FLASK_SERVER_SECRET_KEY (a random string) and, for the first start, "
    "MLFLOW_AUTH_ADMIN_PASSWORD (12 characters or more)."
)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and `localhost`.

    0.0.0.0 and :: mean every interface; a host name may resolve anywhere: neither is loopback.
    """
    bare = host.strip().strip("[]").lower()
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def check_auth_config(path: Path) -> None:
    """Fail fast, saying how to fix it, when MLflow's basic-auth app could not start with `path`
    (MLflow itself would fail later, inside the server, with a traceback)."""
    if not path.is_file():
        raise ConfigError(f"The auth config {path} does not exist. {AUTH_HOW_TO}")
    parser = configparser.ConfigParser()
    try:
        read = parser.read(path)
    except configparser.Error as exc:
        raise ConfigError(f"{path} is not a valid ini file ({exc}). {AUTH_HOW_TO}") from None
    if not read or not parser.has_option("mlflow", "database_uri"):
        raise ConfigError(f"{path} has no [mlflow] section with database_uri. {AUTH_HOW_TO}")
    if not os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        raise ConfigError(
            "MLFLOW_FLASK_SERVER_SECRET_KEY is not set; MLflow's basic-auth app needs it (CSRF "
            f"protection). {AUTH_HOW_TO}"
        )
    default = parser.get("mlflow", "default_permission", fallback="READ").upper()
    if default not in ("READ", "NO_PERMISSIONS"):
        err_console.print(
            f"[bold yellow]warning:[/] default_permission = {default} in {path}: every user "
            "can change every experiment and registered model, not only read them.",
            highlight=False,
        )
