"""MLflow, set up in one place: sqlite under KIT_DATA_DIR by default, a server when configured.

    MLFLOW_TRACKING_URI unset -> sqlite:///KIT_DATA_DIR/mlflow.db, artifacts beside it
    MLFLOW_TRACKING_URI=http://mlflow:5000 -> that server (and its artifact store)

Nothing happens on import: `start(settings, experiment)` points MLflow at the store, creating the
experiment (with its artifact location) the first time, and returns the `mlflow` module.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from services.common.settings import KitSettings


def tracking_uri(settings: KitSettings) -> str:
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return f"sqlite:///{settings.data_dir / 'mlflow.db'}"


def start(settings: KitSettings, experiment: str) -> Any:
    """Point MLflow at the configured store and select `experiment`; returns the mlflow module."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network calls from a pipeline
    import mlflow

    # Creating or migrating the sqlite store logs a dozen INFO lines; they are not the user's news.
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    settings.ensure_dirs()
    point_mlflow_at(tracking_uri(settings))
    if mlflow.get_experiment_by_name(experiment) is None:
        location = None
        if not settings.mlflow_tracking_uri:  # local store: artifacts beside it, not in the cwd
            location = (settings.data_dir / "mlartifacts" / experiment).as_uri()
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return mlflow


def point_mlflow_at(uri: str) -> None:
    """`mlflow.set_tracking_uri`, without its side effect on this process's environment.

    MLflow also exports the URI as MLFLOW_TRACKING_URI (for subprocesses). The kit's settings
    read that variable as "a server is configured", so leaving it set would send every later
    `KitSettings()` of this process (another job, another test) to this store.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
