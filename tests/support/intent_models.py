"""Registered intent models for tests, made in seconds: the kit's own kind, and an attacker's.

`tiny_classifier` is an `IntentClassifier` on a one-layer, 32-wide encoder (4 MB of weights, the
shipped MiniLM tokenizer): what `kit finetune` would register, minus the minutes of training.
`log_kit_model` logs and registers it with the kit's own `log_intent_model`, as a job does.

`register_crafted` is the attacker's side: it uploads a model folder written by hand, with the
MLflow client alone (no kit code), as anyone with write access to the registry can. Crafting the
folder by hand means the malicious code in it runs nowhere unless a loader runs it; MLflow's own
`log_model` would run a models-from-code script while logging it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

LABELS = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed"]
MODEL_NAME = "intent-router"


def tiny_classifier(labels: list[str] = LABELS, seed: int = 0) -> Any:
    """An untrained but deterministic classifier: one of `labels` for any text."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kit.finetune.classifier import IntentClassifier
    from kit.llm.local_models.paths import MINILM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(MINILM.path()))
    encoder = BertModel(
        BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=128,
        )
    )
    encoder.train(False)  # inference mode: dropout off
    return IntentClassifier(encoder, tokenizer, torch.randn(len(labels), 32), list(labels))


def log_kit_model(
    mlflow: Any, model: Any, *, alias: str | None = None, name: str = MODEL_NAME
) -> str:
    """Log `model` as `kit finetune` does (in its own run), register it under `name`, and point
    `alias` at the new version; returns the version."""
    from kit.finetune.config import CONFIGS, load_config
    from kit.finetune.packaging import log_intent_model

    config = load_config(CONFIGS / "quick.yaml")
    with tempfile.TemporaryDirectory(prefix="tiny-intent-") as folder, mlflow.start_run():
        model.save(Path(folder))
        uri = log_intent_model(config, Path(folder), model.labels)
    version = str(mlflow.register_model(uri, name).version)
    if alias is not None:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def download_version(tracking_uri: str, version: str, into: Path, name: str = MODEL_NAME) -> Path:
    """A registered version's files, as MLflow stores them (MLmodel, script, artifacts/...)."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, version),
            dst_path=str(into),
            tracking_uri=tracking_uri,
        )
    )


def register_crafted(
    tracking_uri: str,
    folder: Path,
    *,
    alias: str,
    params: dict[str, str] | None = None,
    name: str = MODEL_NAME,
) -> str:
    """Upload `folder` as the model of a new run and register it as a version of `name` with
    `alias`, through the plain MLflow client; `params` are logged on the run. Returns the
    version."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    # The kit's experiment: it exists already, with its artifacts where the store keeps them.
    experiment = client.get_experiment_by_name("finetune-intent")
    assert experiment is not None, "log a kit model first: it creates the experiment"
    run = client.create_run(experiment.experiment_id)
    for key, value in (params or {}).items():
        client.log_param(run.info.run_id, key, value)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    created = client.create_model_version(
        name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, alias, created.version)
    return str(created.version)


def copy_of(folder: Path, into: Path) -> Path:
    shutil.copytree(folder, into)
    return into


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_of(model_root: Path) -> Path:
    """The folder of the weights in a downloaded version (MLmodel names it)."""
    import yaml

    mlmodel = yaml.safe_load((model_root / "MLmodel").read_text())
    return model_root / str(mlmodel["flavors"]["python_function"]["artifacts"]["model"]["path"])


def rewrite_manifest(model_root: Path) -> str | None:
    """Recompute the kit manifest of a crafted model, as an attacker who knows its format would,
    and return the digest to record; None when the folder has no manifest (older kits)."""
    weights = weights_of(model_root)
    manifest_path = weights / "kit-manifest.json"
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = {
        path.relative_to(weights).as_posix(): sha256(path)
        for path in sorted(weights.rglob("*"))
        if path.is_file() and path != manifest_path
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return sha256(manifest_path)
