"""Fine-tuned intent models as MLflow models: logged with the run, with a manifest of their files.

An MLflow "pyfunc" model is a folder with the weights (artifacts), the code that loads them and
the requirements. The model is logged "from code" (MLflow's recommended way): MLflow stores the
small script `mlflow_model.py` with the model and runs it at load time (it builds
`IntentRouterModel`, whose `load_context` picks the loader by the method in the model's config),
so `mlflow.pyfunc.load_model` and MLflow's tools can still load it.

The kit itself never loads a registered model that way: running the script a version holds
would let anyone who can write to the registry run code in the gateway. trusted.py loads it
instead, checking the files against the manifest written here (`kit-manifest.json` in the
weights folder, manifest.py) and the manifest against its sha256, logged as the run param
`model_manifest_sha256` (a param, because MLflow refuses to change one once logged, and it
lives in the tracking database, not in the artifact store with the files).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from mlflow.pyfunc.model import PythonModel

from kit.finetune.config import FinetuneConfig
from kit.finetune.manifest import write_manifest
from kit.finetune.trusted import MANIFEST_PARAM, MODEL_CODE


class IntentRouterModel(PythonModel):
    """A fine-tuned intent model of either method, behind MLflow's pyfunc interface."""

    def load_context(self, context: Any) -> None:
        folder = Path(context.artifacts["model"])
        config = context.model_config
        if config["method"] == "classifier":
            from kit.finetune.classifier import IntentClassifier

            self.model: Any = IntentClassifier.load(folder)
        else:
            from kit.finetune.lora import LoraIntentGenerator

            self.model = LoraIntentGenerator.load(folder, expected_labels=config["labels"])

    def predict(
        self, context: Any, model_input: list[str], params: dict[str, Any] | None = None
    ) -> list[str]:
        labels: list[str] = self.model.predict(_texts(model_input))
        return labels


def _texts(model_input: Any) -> list[str]:
    """The type hint makes MLflow hand over a list of strings; a DataFrame (from MLflow's own
    scoring server) or one string are accepted too."""
    if isinstance(model_input, str):
        return [model_input]
    if hasattr(model_input, "columns"):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        return [str(text) for text in model_input[column].tolist()]
    return [str(text) for text in model_input]


def _requirements() -> list[str]:
    """Pinned from this environment, so the model's requirements are what it was tested with
    (and MLflow need not guess them by importing things)."""
    names = ["torch", "transformers", "mlflow", "numpy", "scikit-learn", "peft"]
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def log_intent_model(config: FinetuneConfig, folder: Path, labels: list[str]) -> str:
    """Log the trained model in `folder` to the active run, with its manifest (written into
    `folder`) and the manifest's digest as a run param; returns the model URI."""
    import mlflow.pyfunc

    digest = write_manifest(folder, config.method, labels)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(MODEL_CODE),
        artifacts={"model": str(folder)},
        model_config={"method": config.method, "labels": labels},
        pip_requirements=_requirements(),
        input_example=["I still have not received my new card"],
        metadata={"method": config.method, "config": config.name},
    )
    mlflow.log_param(MANIFEST_PARAM, digest)
    return str(info.model_uri)
