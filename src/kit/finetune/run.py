"""One fine-tuning job, start to finish, as one MLflow run.

    load + split the data  -> train (loss per step, validation accuracy per epoch)
    -> score the untouched test split  -> log the model  -> register  -> gate (champion or not)

Logged: the config (params and the file), the dataset version, the git commit, system info,
training loss per step, validation and test metrics, timings and peak memory; artifacts: the
model, the per-class report, the confusion matrix, sample predictions. A job that fails leaves
its run marked FAILED with the error as a tag and the traceback as an artifact, so a crash is
never a silently missing run. If the tracking server goes away mid-job, training carries on and
the job then fails naming a local folder that holds the model and every metric (record.py); a
run left RUNNING by a killed job is marked KILLED by the next job on the same machine.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.core import tracking
from kit.core.logging import get_logger
from kit.core.settings import KitSettings
from kit.finetune.config import FinetuneConfig
from kit.finetune.data import Example, Splits, load_splits
from kit.finetune.evaluate import Scores, confusion_plot, sample_table, score
from kit.finetune.record import RunRecord
from kit.finetune.registry import GateDecision, mark_undecided, register_and_gate

log = get_logger(__name__)
EXPERIMENT = "finetune-intent"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class FinetuneResult:
    run_id: str
    test: Scores
    validation_accuracy: float | None
    decision: GateDecision
    train_seconds: float
    peak_memory_mb: float


def flat_params(config: FinetuneConfig) -> dict[str, Any]:
    """The config as MLflow params: {"train.learning_rate": 0.0001, ...}."""
    params: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            params[prefix] = value

    walk("", config.model_dump(mode="json"))
    return params


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, like a user runs it
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{'-dirty' if dirty else ''}"


def peak_memory_mb() -> float:
    """This process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def system_info(threads: int) -> dict[str, Any]:
    import torch

    return {
        "system.python": platform.python_version(),
        "system.platform": platform.platform(),
        "system.cpu_count": os.cpu_count(),
        "system.torch": torch.__version__,
        "system.torch_threads": threads,
        "system.cuda": torch.cuda.is_available(),
    }


def run_finetune(
    config: FinetuneConfig,
    settings: KitSettings,
    *,
    config_path: Path | None = None,
    progress: Progress = lambda message: None,
) -> FinetuneResult:
    import torch

    mlflow = tracking.start(settings, EXPERIMENT)
    uri = tracking.tracking_uri(settings)
    threads = config.train.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    with tracking.outages_reported(uri):
        for abandoned in tracking.close_abandoned_runs(mlflow, EXPERIMENT):
            mark_undecided(config.registry.model_name, abandoned)
            progress(f"run {abandoned[:8]} was left RUNNING by a job that is gone: marked KILLED")
        run = mlflow.start_run(run_name=config.name, tags=tracking.owner_tags())
    record = RunRecord(mlflow, run.info.run_id)
    try:
        result = _run(mlflow, record, config, settings, config_path, threads, progress)
    except BaseException as exc:
        cause = tracking.unreachable(exc)
        if cause is not None:
            raise _saved_locally(mlflow, record, settings, uri, cause, exc) from exc
        log.error("finetune_failed", run_id=run.info.run_id, error=str(exc))
        try:  # recorded, then re-raised: the run ends FAILED, with the error on it
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.log_text(traceback.format_exc(), "error.txt")
        finally:
            mlflow.end_run("FAILED")
        raise
    mlflow.end_run()
    return result


def _saved_locally(
    mlflow: Any,
    record: RunRecord,
    settings: KitSettings,
    uri: str,
    cause: BaseException,
    error: BaseException,
) -> tracking.TrackingUnavailableError:
    """The tracking server went away: keep what the job made on local disk, and say where."""
    folder = record.save(settings.data_dir / "finetune-untracked" / record.run_id, error)
    log.error("finetune_tracking_lost", run_id=record.run_id, saved=str(folder))
    try:  # one more try: if the server is back, the run is closed as FAILED right away
        mlflow.end_run("FAILED")
    except Exception:  # still down: the next job marks the run KILLED (close_abandoned_runs)
        log.warning("finetune_run_left_open", run_id=record.run_id)
    kept = "the trained model, its params and metrics" if record.model else "its params and metrics"
    return tracking.TrackingUnavailableError(
        f"{tracking.unreachable_message(uri, cause)} Run {record.run_id} did not finish and "
        f"nothing was registered; {kept} are saved in {folder}. Run the job again once the "
        "server answers."
    )


def _run(
    mlflow: Any,
    record: RunRecord,
    config: FinetuneConfig,
    settings: KitSettings,
    config_path: Path | None,
    threads: int,
    progress: Progress,
) -> FinetuneResult:
    mlflow.set_tags({"git_commit": git_commit(), "method": config.method})
    record.log_params(flat_params(config) | system_info(threads))
    if config_path is not None:
        mlflow.log_artifact(str(config_path), "config")
    mlflow.log_dict(config.model_dump(mode="json"), "config/resolved.json")

    splits = load_splits(config.data, config.seed)
    record.log_params({f"dataset.{key}": value for key, value in splits.version.items()})
    record.log_params(
        {
            "dataset.train_rows": len(splits.train),
            "dataset.validation_rows": len(splits.validation),
            "dataset.test_id": splits.test_id,
        }
    )
    progress(
        f"data: {len(splits.train)} train, {len(splits.validation)} validation, "
        f"{len(splits.test)} test rows, {len(splits.labels)} labels"
    )

    # Training metrics are held, not raised, while the server is unreachable (record.py).
    def on_step(step: int, loss: float, lr: float) -> None:
        record.log_metrics({"train_loss": loss, "learning_rate": lr}, step=step, hold=True)

    validation: dict[str, float] = {}

    def on_epoch(epoch: int, accuracy: float) -> None:
        validation["accuracy"] = accuracy
        record.log_metrics({"validation_accuracy": accuracy}, step=epoch, hold=True)
        progress(f"epoch {epoch}: validation accuracy {accuracy:.4f}")

    model, trained, base_name = _train(config, splits, on_step, on_epoch, settings)
    record.model = model
    record.send_held()  # still unreachable: raises, and run_finetune saves the model locally
    record.log_params({"base_model": base_name, "steps": trained.steps})
    record.log_metrics({"train_seconds": trained.seconds, "final_train_loss": trained.final_loss})
    progress(f"trained {trained.steps} steps in {trained.seconds:.0f}s; scoring the test split")

    test = score(model, splits.test)
    record.log_metrics(test.metrics("test") | {"peak_memory_mb": peak_memory_mb()})
    _log_reports(mlflow, splits.test, test, splits.labels)

    from kit.finetune.packaging import log_intent_model

    with tempfile.TemporaryDirectory(prefix="intent-model-") as folder:
        model.save(Path(folder))
        model_uri = log_intent_model(config, Path(folder), splits.labels)

    # The champion is loaded the way the gateway loads it (trusted.py): verified, never by
    # running code stored in the registry.
    from kit.finetune.trusted import load_uri, refusal

    store = tracking.tracking_uri(settings)

    def score_champion(champion: str) -> float:
        progress(f"scoring the champion {champion} on this test split")
        return score(load_uri(champion, store, settings)[1], splits.test).accuracy

    decision = register_and_gate(
        mlflow,
        model_uri,
        config.registry.model_name,
        accuracy=test.accuracy,
        test_id=splits.test_id,
        margin=config.registry.promote_margin,
        score_champion=score_champion,
        refusal=lambda champion: refusal(champion, store),
    )
    return FinetuneResult(
        record.run_id, test, validation.get("accuracy"), decision, trained.seconds, peak_memory_mb()
    )


def _train(
    config: FinetuneConfig,
    splits: Splits,
    on_step: Callable[[int, float, float], None],
    on_epoch: Callable[[int, float], None],
    settings: KitSettings,
) -> tuple[Any, Any, str]:
    if config.method == "classifier":
        from kit.finetune.classifier import train_classifier
        from kit.llm.local_models.paths import MINILM

        model, trained = train_classifier(
            config, splits.train, _held_out(config, splits), splits.labels, on_step, on_epoch
        )
        return model, trained, MINILM.name
    from kit.finetune.lora import train_lora
    from kit.llm.local_models.paths import SMOLLM2

    generator, trained = train_lora(
        config,
        splits.train,
        _held_out(config, splits),
        splits.labels,
        on_step,
        on_epoch,
        settings=settings,
    )
    return generator, trained, SMOLLM2.name


def _held_out(config: FinetuneConfig, splits: Splits) -> list[Example]:
    """Validation rows to report on, unless they are being trained on (their score would lie)."""
    return [] if config.data.train_on_validation else splits.validation


def _log_reports(mlflow: Any, rows: list[Example], test: Scores, labels: list[str]) -> None:
    mlflow.log_dict(test.report, "evaluation/per_class_report.json")
    mlflow.log_table(sample_table(rows, test.predictions), "evaluation/sample_predictions.json")
    with tempfile.TemporaryDirectory() as folder:
        plot = confusion_plot(rows, test.predictions, labels, Path(folder) / "confusion.png")
        mlflow.log_artifact(str(plot), "evaluation")
