"""A fine-tuning run's configuration: one YAML file, validated before anything loads.

    kit finetune --config pipelines/finetune/configs/default.yaml

Every knob that changes the result is here, so the file (logged with the run) reproduces it;
seeds are fixed. Unknown keys are errors: a misspelt `learning_rte` must not silently fall
back to a default. `load_config` turns validation errors into one message per problem, naming
the key and the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kit.core.errors import ConfigError

# The shipped configs: job inputs an operator reads and copies, so they live in the repository's
# pipelines/ folder, not in the package. Like the data files they name (data/banking77/...), the
# path is relative to the working directory: run jobs from the repository root (or the image's
# /app, where both are copied).
CONFIGS = Path("pipelines/finetune/configs")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    train_file: Path = Path("data/banking77/train.csv")
    test_file: Path = Path("data/banking77/test.csv")
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    train_limit: int | None = Field(None, ge=77, description="Stratified sample of train.")
    test_limit: int | None = Field(None, ge=77, description="Stratified sample of test.")
    train_on_validation: bool = Field(
        False,
        description="After choosing settings on validation, train on train + validation "
        "(the test file is never trained on).",
    )


class TrainSpec(_Strict):
    epochs: float = Field(4, gt=0, le=100)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps.")
    batch_size: int = Field(32, ge=1, le=1024)
    learning_rate: float = Field(1e-4, gt=0, le=1)
    head_learning_rate: float = Field(2e-3, gt=0, le=1, description="Classifier head (MiniLM).")
    freeze_embeddings: bool = Field(
        True, description="Keep MiniLM's word-piece embeddings fixed (half its weights)."
    )
    warmup_fraction: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0, le=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    max_length: int = Field(64, ge=8, le=512, description="Tokens per query; longer is cut.")
    threads: int = Field(0, ge=0, le=256, description="CPU threads; 0 = every core.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda if present.")
    log_every: int = Field(20, ge=1, description="Log the training loss every N steps.")


class LoraSpec(_Strict):
    r: int = Field(16, ge=1, le=256)
    alpha: int = Field(32, ge=1, le=1024)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_new_tokens: int = Field(12, ge=1, le=64, description="Label tokens generated.")


class RegistrySpec(_Strict):
    model_name: str = Field("intent-router", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    promote_margin: float = Field(
        0.002,
        ge=0,
        le=1,
        description="Accuracy the new model must add over the champion to replace it.",
    )


class FinetuneConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    method: Literal["classifier", "lora"] = Field(
        description="classifier: MiniLM encoder + cosine head; lora: SmolLM2 writes the label."
    )
    seed: int = 0
    data: DataSpec = DataSpec()
    train: TrainSpec = TrainSpec()
    lora: LoraSpec | None = None
    registry: RegistrySpec = RegistrySpec()

    @model_validator(mode="after")
    def _lora_needs_its_section(self) -> Self:
        if self.method == "lora" and self.lora is None:
            raise ValueError("method: lora needs a `lora:` section (r, alpha, ...)")
        if self.method == "classifier" and self.lora is not None:
            raise ValueError("a `lora:` section only applies to method: lora")
        return self


def load_config(path: Path) -> FinetuneConfig:
    """The validated config at `path`, or a ConfigError that says what to fix."""
    if not path.exists():
        known = ", ".join(sorted(p.name for p in CONFIGS.glob("*.yaml")))
        raise ConfigError(f"No config file {path}. Shipped configs in {CONFIGS}: {known}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a YAML mapping (name: ..., method: ..., train: ...)")
    try:
        return FinetuneConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path} is not a valid fine-tuning config:\n{problems}") from None
