"""One drift run, start to finish, as one MLflow run (experiment "drift").

    collect the windows -> embed both (one batch) -> best chunk similarity (Qdrant) -> score
    -> Prometheus gauges (textfile and/or Pushgateway)
    -> MLflow run: report (HTML + scores JSON, written under KIT_DATA_DIR/reports/drift and
       logged as artifacts), params (windows, thresholds, embedder), metrics (every score)

The embedder and the chunk store are passed in, opened by the caller (`kit drift`, a test, a
notebook), like the RAG service's `rag_service`. A run that fails after its MLflow run started
leaves it FAILED with the error as a tag, never a silently missing run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry

from kit.core import tracking
from kit.core.logging import get_logger
from kit.core.ports import Embedder
from kit.core.settings import KitSettings
from kit.drift import collect, export, report
from kit.drift.collect import Window
from kit.drift.corpus import Nearest, nearest_chunks
from kit.drift.score import Scores, Thresholds, score_windows
from kit.rag.store import ChunkStore

log = get_logger(__name__)
EXPERIMENT = "drift"


@dataclass(frozen=True)
class DriftOptions:
    log: Path | None  # the query log; None: only for a reference and current from files
    reference: Path = collect.DEFAULT_REFERENCE
    reference_span: tuple[timedelta, timedelta] | None = None  # from the log instead: (14d, 7d)
    current: Path | None = None  # a question file as the current window, instead of the log
    window: timedelta | None = timedelta(days=7)  # the current window: the log's last 7 days
    last: int | None = None  # ... or its last N questions (wins over `window`)
    collection: str = "docs"
    thresholds: Thresholds = field(default_factory=Thresholds)
    min_questions: int = 30
    permutations: int = 500
    seed: int = 0
    output_dir: Path | None = None  # default: KIT_DATA_DIR/reports/drift
    metrics_file: Path | None = None  # textfile-collector output (*.prom)
    pushgateway: str | None = None  # e.g. http://127.0.0.1:9091


@dataclass
class DriftResult:
    reference: Window
    current: Window
    reference_vectors: npt.NDArray[np.float32]  # (n_ref, dim)
    current_vectors: npt.NDArray[np.float32]  # (n_cur, dim)
    reference_nearest: Nearest
    current_nearest: Nearest
    scores: Scores
    thresholds: Thresholds
    embedder: str
    collection: str
    started: datetime
    seconds: float = 0.0  # collecting, embedding, searching and scoring; not MLflow
    run_id: str | None = None
    report_path: Path | None = None
    scores_path: Path | None = None

    @property
    def drifted(self) -> bool:
        return bool(self.scores.drifted)

    def as_dict(self) -> dict[str, Any]:
        """The scores JSON: what a script or the next run compares against."""
        return {
            "started": self.started.isoformat(),
            "seconds": round(self.seconds, 3),
            "drifted": self.drifted,
            "embedder": self.embedder,
            "collection": self.collection,
            "windows": {
                w.name: {"questions": len(w), "source": w.source}
                for w in (self.reference, self.current)
            },
            "checks": [
                {
                    "name": c.name,
                    "score": c.score,
                    "threshold": c.threshold,
                    "drifted": c.drifted,
                    "meaning": c.meaning,
                }
                for c in self.scores.checks
            ],
            "details": self.scores.details,
            "mlflow_run_id": self.run_id,
        }


def collect_windows(options: DriftOptions, now: datetime) -> tuple[Window, Window]:
    """The reference and current windows the options name, each large enough to score."""
    if options.current is not None:
        current = collect.question_file(options.current, name="current")
    elif options.log is None:
        raise collect.NotEnoughQuestions(f"No query log is configured. {collect.HOW_TO_LOG}")
    else:
        current = collect.log_window(
            options.log,
            now=now,
            since=options.window,
            last=options.last,
            collection=options.collection,
        )
    if options.reference_span is not None:
        if options.log is None:
            raise collect.NotEnoughQuestions(
                f"A reference window from the log needs a log. {collect.HOW_TO_LOG}"
            )
        older, newer = options.reference_span
        reference = collect.log_window(
            options.log,
            now=now,
            since=older,
            until=newer,
            collection=options.collection,
            name="reference",
        )
    else:
        reference = collect.question_file(options.reference)
    for window in (reference, current):
        collect.require(window, options.min_questions)
    return reference, current


def run_drift(
    settings: KitSettings,
    options: DriftOptions,
    *,
    embedder: Embedder,
    store: ChunkStore,
    now: datetime | None = None,
    windows: tuple[Window, Window] | None = None,
) -> DriftResult:
    """Score the windows (default: `collect_windows(options, now)`; a caller that collects them
    itself, before loading a model, passes them in) and record the result everywhere."""
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    reference, current = windows or collect_windows(options, started)
    store.check_embedder(embedder.name)

    vectors = embedder.embed(reference.questions + current.questions)  # one batched call
    nearest = nearest_chunks(store, vectors)
    n = len(reference)
    ref_nearest = Nearest(nearest.similarity[:n], nearest.doc_id[:n])
    cur_nearest = Nearest(nearest.similarity[n:], nearest.doc_id[n:])
    scores = score_windows(
        reference_vectors=vectors[:n],
        current_vectors=vectors[n:],
        reference_texts=reference.questions,
        current_texts=current.questions,
        reference_similarity=ref_nearest.similarity,
        current_similarity=cur_nearest.similarity,
        current_refused=current.refused,
        thresholds=options.thresholds,
        permutations=options.permutations,
        seed=options.seed,
    )
    result = DriftResult(
        reference=reference,
        current=current,
        reference_vectors=vectors[:n],
        current_vectors=vectors[n:],
        reference_nearest=ref_nearest,
        current_nearest=cur_nearest,
        scores=scores,
        thresholds=options.thresholds,
        embedder=embedder.name,
        collection=store.collection,
        started=started,
        seconds=time.perf_counter() - clock,
    )
    # The gauges first: alerting must not depend on the tracking server being up.
    _export(result, options)
    mlflow = tracking.start(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"drift-{store.collection}-{started:%Y%m%d-%H%M}") as run:
        try:
            result.run_id = str(run.info.run_id)  # named in the report, for whoever opens it
            _write_files(result, options.output_dir or settings.data_dir / "reports" / "drift")
            _log_run(mlflow, result, options)
        except BaseException as exc:  # recorded, then re-raised: the run ends FAILED
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            raise
    log.info(
        "drift_scored",
        drifted=[c.name for c in scores.drifted],
        run_id=result.run_id,
        seconds=round(result.seconds, 2),
        **{c.name: round(c.score, 4) for c in scores.checks},
    )
    return result


def _write_files(result: DriftResult, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"drift-{result.started:%Y%m%d-%H%M%S}"
    result.report_path = folder / f"{stem}.html"
    result.scores_path = folder / f"{stem}.json"
    result.report_path.write_text(report.render(result), encoding="utf-8")
    result.scores_path.write_text(json.dumps(result.as_dict(), indent=2), encoding="utf-8")


def _export(result: DriftResult, options: DriftOptions) -> None:
    if options.metrics_file is None and options.pushgateway is None:
        return
    registry = CollectorRegistry()
    export.DriftMetrics(registry).record(
        result.scores,
        reference=len(result.reference),
        current=len(result.current),
        seconds=result.seconds,
    )
    if options.metrics_file is not None:
        export.write_textfile(options.metrics_file, registry)
    if options.pushgateway is not None:
        export.push(options.pushgateway, registry, collection=result.collection)


def _log_run(mlflow: Any, result: DriftResult, options: DriftOptions) -> None:
    t = options.thresholds
    mlflow.set_tags({"drifted": str(result.drifted).lower(), "collection": result.collection})
    mlflow.log_params(
        {
            "embedder": result.embedder,
            "collection": result.collection,
            "reference_source": result.reference.source[:500],
            "current_source": result.current.source[:500],
            "reference_questions": len(result.reference),
            "current_questions": len(result.current),
            "threshold_mmd": t.mmd,
            "threshold_psi": t.psi,
            "threshold_far_share": t.far_share,
            "threshold_refusal_rate": t.refusal_rate,
            "similarity_cutoff": t.similarity,
            "permutations": options.permutations,
            "seed": options.seed,
        }
    )
    mlflow.log_metrics(
        {c.name: c.score for c in result.scores.checks}
        | result.scores.details
        | {"checks_drifted": float(len(result.scores.drifted)), "seconds": result.seconds}
    )
    assert result.report_path is not None and result.scores_path is not None  # written first
    mlflow.log_artifact(str(result.report_path))
    mlflow.log_artifact(str(result.scores_path))
