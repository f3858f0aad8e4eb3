"""Fine-tuned intent models as MLflow models: logged with the run, loadable by anything.

An MLflow "pyfunc" model is a folder with the weights (artifacts), a loader class and the
requirements; `mlflow.pyfunc.load_model("models:/intent-router@champion")` returns an object
whose `predict(["text", ...])` gives labels, whichever method trained it. The gateway serves
intents that way (services/gateway/providers/registry.py), and so does `kit predict`.

The loader classes live in this package, which must be importable where the model is loaded
(the kit is installed there: the gateway, the CLI, the tests).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from mlflow.pyfunc.model import PythonModel

from pipelines.finetune.config import FinetuneConfig


class IntentClassifierModel(PythonModel):
    """The MiniLM classifier (pipelines/finetune/classifier.py) as a pyfunc model."""

    def load_context(self, context: Any) -> None:
        from pipelines.finetune.classifier import IntentClassifier

        self.model = IntentClassifier.load(Path(context.artifacts["classifier"]))

    def predict(
        self, context: Any, model_input: list[str], params: dict[str, Any] | None = None
    ) -> list[str]:
        return self.model.predict(_texts(model_input))


class LoraIntentModel(PythonModel):
    """SmolLM2 with a LoRA adapter (pipelines/finetune/lora.py): the label is generated."""

    def load_context(self, context: Any) -> None:
        from pipelines.finetune.lora import LoraIntentGenerator

        self.model = LoraIntentGenerator.load(Path(context.artifacts["adapter"]))

    def predict(
        self, context: Any, model_input: list[str], params: dict[str, Any] | None = None
    ) -> list[str]:
        return self.model.predict(_texts(model_input))


def _texts(model_input: Any) -> list[str]:
    """pyfunc hands over a DataFrame (column "text"), a list or a single string."""
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
    """Log the trained model in `folder` to the active run; returns its model URI."""
    import mlflow.pyfunc

    if config.method == "classifier":
        python_model: Any = IntentClassifierModel()
        artifacts = {"classifier": str(folder)}
    else:
        python_model = LoraIntentModel()
        artifacts = {"adapter": str(folder)}
    example = ["I still have not received my new card"]
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model,
        artifacts=artifacts,
        pip_requirements=_requirements(),
        input_example=example,  # the signature comes from predict's type hints: list[str]
        metadata={"labels": labels, "method": config.method, "config": config.name},
    )
    return str(info.model_uri)
