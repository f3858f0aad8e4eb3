"""MLflow is pointed at the kit's store without changing the process's environment."""

from __future__ import annotations

import os
from pathlib import Path

from kit.core import tracking
from kit.core.settings import KitSettings


def test_starting_tracking_leaves_no_mlflow_variable_behind(tmp_path: Path) -> None:
    settings = KitSettings(_env_file=None, environment="test", data_dir=tmp_path)  # type: ignore[call-arg]

    mlflow = tracking.start(settings, "unit")

    # MLflow itself would export MLFLOW_TRACKING_URI; the next KitSettings() would then read this
    # sqlite store as a configured server.
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert KitSettings(_env_file=None).mlflow_tracking_uri is None  # type: ignore[call-arg]
