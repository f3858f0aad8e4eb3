"""Drift scores as Prometheus gauges, for the DriftScoreHigh alert and the drift dashboard.

A drift run is a batch job: it is not running when Prometheus scrapes, so it cannot serve
/metrics. Two standard ways out, both here:

    textfile   write_textfile(path)  -> node_exporter's textfile collector serves the file
    push       push(url)             -> a Pushgateway keeps the last push; Prometheus scrapes it
                                        (job "pushgateway" with honor_labels: true)

Every gauge lives in the run's own `CollectorRegistry`, never prometheus-client's global one, so
a run exports exactly its own series and two runs in one process never collide. The threshold
is exported beside each score, so the alert rule compares the two and holds no numbers of its own.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from kit.core.errors import KitError
from kit.drift.score import Scores

JOB = "kit-drift"


class DriftMetrics:
    """The drift job's series (exported names in comments)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.score = Gauge(  # drift_score{check="embedding_mmd"}
            "drift_score",
            "Drift score of the last run, per check; above drift_threshold means drift.",
            ["check"],
            registry=registry,
        )
        self.threshold = Gauge(
            "drift_threshold",
            "The threshold each drift check was run with.",
            ["check"],
            registry=registry,
        )
        self.p_value = Gauge(
            "drift_embedding_p_value",
            "Permutation p-value of the embedding MMD: small means the windows really differ.",
            registry=registry,
        )
        self.questions = Gauge(
            "drift_window_questions",
            "Questions in each window of the last run (reference, current).",
            ["window"],
            registry=registry,
        )
        self.last_run = Gauge(
            "drift_last_run_timestamp_seconds",
            "When the last drift run finished (Unix time); alert when it gets old.",
            registry=registry,
        )
        self.duration = Gauge(
            "drift_run_duration_seconds",
            "How long the last drift run took.",
            registry=registry,
        )

    def record(self, scores: Scores, *, reference: int, current: int, seconds: float) -> None:
        for check in scores.checks:
            self.score.labels(check.name).set(check.score)
            self.threshold.labels(check.name).set(check.threshold)
        self.p_value.set(scores.details["embedding_mmd_p_value"])
        self.questions.labels("reference").set(reference)
        self.questions.labels("current").set(current)
        self.duration.set(seconds)
        self.last_run.set(time.time())


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    """Write the registry in the text exposition format, atomically (a temporary file renamed
    into place, so node_exporter never reads half a file). Name it *.prom for the collector."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)


def push(url: str, registry: CollectorRegistry, *, collection: str, timeout: float = 10) -> None:
    """Replace this job's group on the Pushgateway (PUT): series a run no longer sets, such as
    refusal_rate for a window without refusals, disappear instead of going stale."""
    try:
        push_to_gateway(
            url,
            job=JOB,
            registry=registry,
            grouping_key={"collection": collection},
            timeout=timeout,
        )
    except OSError as exc:  # URLError and connection errors are OSErrors
        raise KitError(
            f"Could not push the drift metrics to the Pushgateway at {url}: {exc}. Check the URL "
            "(e.g. http://127.0.0.1:9091) and that the Pushgateway runs."
        ) from None
