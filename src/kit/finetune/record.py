"""What a fine-tuning job logged, kept in memory too, so that a tracking outage loses nothing.

Metrics go to MLflow as usual; while the server does not answer during training they are held
here and training carries on. If it still does not answer when the job needs it, `save` writes
the model, params and every metric to a local folder. This module knows nothing of training.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.core import tracking
from kit.core.logging import get_logger

log = get_logger(__name__)
Metrics = dict[str, float]


@dataclass
class RunRecord:
    mlflow: Any
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[Metrics, int | None]] = field(default_factory=list)  # (values, step)
    model: Any = None  # the trained model, once there is one (it has `save(folder)`)
    held: list[tuple[Metrics, int | None]] = field(default_factory=list)  # not sent yet

    def log_params(self, params: dict[str, Any]) -> None:
        self.params |= params
        self.mlflow.log_params(params)

    def log_metrics(self, metrics: Metrics, step: int | None = None, *, hold: bool = False) -> None:
        """Log to MLflow; with `hold`, an unreachable server holds them here instead of raising.

        Once one is held, later ones are held without trying: each attempt costs the retries
        (seconds), and training steps come faster than that.
        """
        self.metrics.append((metrics, step))
        if hold and self.held:
            self.held.append((metrics, step))
            return
        try:
            self.mlflow.log_metrics(metrics, step=step)
        except Exception as exc:
            if not hold or tracking.unreachable(exc) is None:
                raise
            log.warning("tracking_unreachable_metrics_held", run_id=self.run_id, error=str(exc))
            self.held.append((metrics, step))

    def send_held(self) -> None:
        """Send the held metrics, oldest first; raises (as MLflow does) if it still fails."""
        while self.held:
            metrics, step = self.held[0]
            self.mlflow.log_metrics(metrics, step=step)
            self.held.pop(0)

    def save(self, folder: Path, error: BaseException) -> Path:
        """Everything the job has, as files a person can read back: the model (if trained),
        params.json, metrics.jsonl (one line per logged step) and the error."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.model is not None:
            self.model.save(folder / "model")
        (folder / "params.json").write_text(json.dumps(self.params, indent=2, default=str))
        with (folder / "metrics.jsonl").open("w") as lines:
            for metrics, step in self.metrics:
                lines.write(json.dumps({"step": step, **metrics}) + "\n")
        (folder / "error.txt").write_text(
            "".join(traceback.format_exception(type(error), error, error.__traceback__))
        )
        (folder / "run.json").write_text(json.dumps({"run_id": self.run_id}, indent=2))
        return folder
