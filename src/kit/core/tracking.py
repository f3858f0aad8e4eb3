"""MLflow, set up in one place: sqlite under KIT_DATA_DIR by default, a server when configured.

    MLFLOW_TRACKING_URI unset -> sqlite:///KIT_DATA_DIR/mlflow.db, artifacts beside it
    MLFLOW_TRACKING_URI=http://mlflow:5000 -> that server (and its artifact store)

Nothing happens on import: `start(settings, experiment)` points MLflow at the store, creating the
experiment (with its artifact location) the first time, and returns the `mlflow` module.
A server that does not answer is reported as a `TrackingUnavailableError` within seconds, not
after MLflow's minutes of retries; `unreachable(exc)` tells such a failure from any other.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kit.core.errors import KitError
from kit.core.settings import KitSettings

# MLflow's own client defaults retry a failed request 7 times with backoff (about 4 minutes)
# and wait 120 s for each answer, so against a server that is down one call hangs for minutes
# and a job (which makes dozens) for much longer. The kit's defaults ride out a blip of about
# 7 s (retries after 0, 2 and 4 s), then fail. Each is MLflow's own variable: set it to override.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",  # per request: a model upload on a slow link fits
}


class TrackingUnavailableError(KitError):
    """The MLflow tracking server did not answer (refused, reset, or timed out after retries)."""

    type = "tracking_unavailable"


def unreachable(exc: BaseException) -> BaseException | None:
    """The network error behind `exc` when it means "the tracking server did not answer".

    MLflow raises a plain `MlflowException` for every failure; the requests error it was
    raised from (its `__cause__` or `__context__`) tells an outage from, say, a missing model.
    """
    import requests

    network = (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError)
    seen: BaseException | None = exc
    for _ in range(10):  # a chain is a few links long; the bound guards against cycles
        if seen is None:
            return None
        if isinstance(seen, network):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def unreachable_message(uri: str, cause: BaseException) -> str:
    root = cause  # the socket's own words ("[Errno 111] Connection refused"), not urllib3's page
    for _ in range(10):
        if (inner := root.__cause__ or root.__context__) is None:
            break
        root = inner
    reason = f"{type(root).__name__}: {root}"[:300]
    return (
        f"The MLflow tracking server at {uri} is unreachable ({reason}). Start it "
        "(`docker compose up -d mlflow`) or fix MLFLOW_TRACKING_URI; `kit doctor` checks the "
        "connection. Without MLFLOW_TRACKING_URI the kit tracks to sqlite under KIT_DATA_DIR."
    )


def tracking_uri(settings: KitSettings) -> str:
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return f"sqlite:///{settings.data_dir / 'mlflow.db'}"


def start(settings: KitSettings, experiment: str) -> Any:
    """Point MLflow at the configured store and select `experiment`; returns the mlflow module."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network calls from a pipeline
    # MLflow prices traced model calls with LiteLLM's cost map, which LiteLLM fetches online.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")
    import mlflow

    # Creating or migrating the sqlite store logs a dozen INFO lines; they are not the user's news.
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    settings.ensure_dirs()
    uri = tracking_uri(settings)
    if uri.startswith(("http://", "https://")):
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
    point_mlflow_at(uri)
    with outages_reported(uri):
        if mlflow.get_experiment_by_name(experiment) is None:
            location = None
            if not settings.mlflow_tracking_uri:  # local store: artifacts beside it, not the cwd
                location = (settings.data_dir / "mlartifacts" / experiment).as_uri()
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)
    return mlflow


@contextmanager
def outages_reported(uri: str) -> Iterator[None]:
    """Raise a failure to reach the tracking server as a `TrackingUnavailableError` that says
    how to fix it; any other error passes through unchanged."""
    try:
        yield
    except TrackingUnavailableError:
        raise
    except Exception as exc:
        cause = unreachable(exc)
        if cause is None:
            raise
        raise TrackingUnavailableError(unreachable_message(uri, cause)) from exc


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


# Tags on every run the kit starts: which process is running it (see `close_abandoned_runs`).
OWNER_HOST, OWNER_PID = "kit.host", "kit.pid"


def owner_tags() -> dict[str, str]:
    return {OWNER_HOST: socket.gethostname(), OWNER_PID: str(os.getpid())}


def close_abandoned_runs(mlflow: Any, experiment: str) -> list[str]:
    """Mark KILLED the runs of `experiment` left RUNNING by a process of this machine that is
    gone, and return their ids.

    A job killed with SIGKILL (or by the OOM killer, or a power cut) cannot end its run, and
    MLflow would show it RUNNING forever. Only runs started on this host are judged: whether a
    process on another machine is still alive cannot be told from here. A run tagged with this
    process's own id was left by an earlier job of this process, which is over.
    """
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    client = mlflow.MlflowClient()
    host, closed = socket.gethostname(), []
    for run in client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        if tags.get(OWNER_HOST) != host or not tags.get(OWNER_PID, "").isdigit():
            continue
        pid = int(tags[OWNER_PID])
        if pid != os.getpid() and _alive(pid):
            continue
        client.set_tag(
            run.info.run_id,
            "error",
            f"abandoned: process {pid} on {host} ended without closing this run (killed?); "
            "marked KILLED by the next job",
        )
        client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: delivers nothing, only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        return True
    return True
