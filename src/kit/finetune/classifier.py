"""Fine-tune the shipped MiniLM encoder as a 77-way intent classifier, on CPU.

    query -> MiniLM (all 6 layers trained) -> mean pooling -> unit vector
          -> cosine similarity to one learned unit vector per label, times a scale -> softmax

Choices that matter on 2 cores (docs/benchmarks.md has the measurements):
- The head starts at the labels' centroids (the mean embedding of each label's training
  queries), so step 0 is already a nearest-centroid classifier (~0.84 validation accuracy)
  instead of a random one, and training refines rather than discovers.
- A cosine head with a fixed scale suits an encoder trained for cosine similarity.
- Batches group queries of similar length, so little compute goes to padding (queries average
  15 word pieces; a random batch pads to ~40).
- The head learns faster than the encoder (two learning rates), with warm-up and linear decay.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kit.finetune.config import FinetuneConfig, TrainSpec
from kit.finetune.data import Example
from kit.finetune.evaluate import IntentModel
from kit.llm.local_models.checkpoint import offline_hub
from kit.llm.local_models.paths import MINILM

if TYPE_CHECKING:
    import torch

HEAD_FILE = "head.safetensors"  # the label vectors, (labels, hidden size)
OnStep = Callable[[int, float, float], None]  # step, training loss, learning rate
OnEpoch = Callable[[int, float], None]  # epoch, validation accuracy


@dataclass(frozen=True)
class TrainResult:
    steps: int
    seconds: float
    final_loss: float


class IntentClassifier:
    """The encoder, the tokenizer and the head; `predict` is what serving calls."""

    SCALE = 30.0  # cosine similarity times this is the logit

    def __init__(self, encoder: Any, tokenizer: Any, head: torch.Tensor, labels: list[str]):
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.head = head
        self.labels = labels
        self.max_length = 64
        self.device = "cpu"

    def to(self, device: str) -> IntentClassifier:
        self.device = device
        self.encoder.to(device)
        self.head = self.head.to(device)
        return self

    # --- building and saving ------------------------------------------------------------------
    @classmethod
    def from_base(cls, labels: list[str]) -> IntentClassifier:
        import torch
        from transformers import AutoModel, AutoTokenizer

        with offline_hub():
            tokenizer = AutoTokenizer.from_pretrained(str(MINILM.path()))
            encoder = AutoModel.from_pretrained(str(MINILM.path()))
        head = torch.zeros(len(labels), encoder.config.hidden_size)
        return cls(encoder, tokenizer, head, labels)

    # Saved as data only: safetensors for tensors (the encoder's and the head), JSON for the
    # rest. Loading reads no pickle (`torch.load`) and no code from the folder, so a model
    # folder from elsewhere (the registry) cannot run code here; src/kit/finetune/trusted.py.
    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder / "encoder")  # model.safetensors, config.json
        self.tokenizer.save_pretrained(folder / "encoder")
        save_file({"head": self.head.detach().cpu().contiguous()}, folder / HEAD_FILE)
        (folder / "labels.json").write_text(
            json.dumps({"labels": self.labels, "max_length": self.max_length})
        )

    @classmethod
    def load(cls, folder: Path) -> IntentClassifier:
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        meta = json.loads((folder / "labels.json").read_text())
        with offline_hub():
            tokenizer = AutoTokenizer.from_pretrained(
                str(folder / "encoder"), trust_remote_code=False
            )
            # use_safetensors: never fall back to pytorch_model.bin, a pickle.
            encoder = AutoModel.from_pretrained(
                str(folder / "encoder"), use_safetensors=True, trust_remote_code=False
            )
        encoder.eval()
        head = load_file(folder / HEAD_FILE)["head"]
        model = cls(encoder, tokenizer, head, meta["labels"])
        model.max_length = meta["max_length"]
        return model

    # --- the forward pass ---------------------------------------------------------------------
    def _tokens(self, texts: Sequence[str]) -> Any:
        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return tokens.to(self.device)

    def embed(self, tokens: Any) -> torch.Tensor:
        import torch.nn.functional as F

        hidden = self.encoder(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    def logits(self, tokens: Any, head: torch.Tensor | None = None) -> torch.Tensor:
        import torch.nn.functional as F

        weights = F.normalize(self.head if head is None else head, dim=-1)
        return self.SCALE * self.embed(tokens) @ weights.T

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """(len(texts), labels) probabilities; batches sorted by length for speed."""
        import torch

        self.encoder.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                probs = self.logits(self._tokens([texts[i] for i in rows])).softmax(-1)
                out[rows] = probs.float().cpu().numpy()
        return out

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(-1)]


def _batches(
    rows: Sequence[Example], size: int, rng: random.Random | None
) -> Iterator[list[Example]]:
    """Batches of similar length; shuffled batch order when `rng` is given."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].text))
    batches = [[rows[i] for i in order[s : s + size]] for s in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(batches)
    yield from batches


def accuracy(model: IntentModel, rows: Sequence[Example]) -> float:
    predicted = model.predict([r.text for r in rows])
    return sum(p == r.label for p, r in zip(predicted, rows, strict=True)) / len(rows)


def warmup_then_decay(optimizer: Any, spec: TrainSpec, per_epoch: int) -> tuple[Any, int]:
    """A linear warm-up over `warmup_fraction` of the steps, then linear decay to zero; returns
    the scheduler and the total number of steps (`max_steps`, else `epochs` x `per_epoch`)."""
    import torch

    total = spec.max_steps or math.ceil(spec.epochs * per_epoch)
    warmup = max(1, int(spec.warmup_fraction * total))

    def schedule(step: int) -> float:
        return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule), total


def optimizer_step(loss: Any, weights: Sequence[Any], optimizer: Any, scheduler: Any) -> float:
    """Backpropagate, clip the gradient norm to 1, step the optimizer and the schedule."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(weights, 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return float(loss.item())


def train_classifier(
    config: FinetuneConfig,
    train: Sequence[Example],
    validation: Sequence[Example],
    labels: list[str],
    on_step: OnStep = lambda step, loss, lr: None,
    on_epoch: OnEpoch = lambda epoch, accuracy: None,
) -> tuple[IntentClassifier, TrainResult]:
    import torch
    import torch.nn.functional as F

    spec = config.train
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)  # noqa: S311 - reproducible batch order, not a secret
    device = spec.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = IntentClassifier.from_base(labels).to(device)
    model.max_length = spec.max_length
    index = {label: i for i, label in enumerate(labels)}
    started = time.perf_counter()

    # Head := label centroids of the untrained encoder's embeddings.
    model.encoder.eval()
    sums = torch.zeros_like(model.head)
    with torch.inference_mode():
        for batch in _batches(train, 128, None):
            vectors = model.embed(model._tokens([e.text for e in batch]))
            targets = torch.tensor([index[e.label] for e in batch], device=device)
            sums.index_add_(0, targets, vectors)
    head = torch.nn.Parameter(F.normalize(sums, dim=-1))
    if spec.freeze_embeddings:  # 11.7M of 22.7M weights; tuning them on 10k queries buys nothing
        model.encoder.embeddings.requires_grad_(False)
    trained_weights = [p for p in model.encoder.parameters() if p.requires_grad]

    optimizer = torch.optim.AdamW(
        [
            {"params": trained_weights, "lr": spec.learning_rate},
            {"params": [head], "lr": spec.head_learning_rate},
        ],
        weight_decay=spec.weight_decay,
    )
    per_epoch = math.ceil(len(train) / spec.batch_size)
    scheduler, total = warmup_then_decay(optimizer, spec, per_epoch)
    step, loss_value, epoch = 0, float("nan"), 0
    model.encoder.train()
    while step < total:
        for batch in _batches(train, spec.batch_size, rng):
            tokens = model._tokens([e.text for e in batch])
            targets = torch.tensor([index[e.label] for e in batch], device=device)
            loss = F.cross_entropy(
                model.logits(tokens, head), targets, label_smoothing=spec.label_smoothing
            )
            loss_value = optimizer_step(loss, trained_weights, optimizer, scheduler)
            step += 1
            if step % spec.log_every == 0 or step == total:
                on_step(step, loss_value, float(scheduler.get_last_lr()[0]))
            if step >= total:
                break
        epoch += 1
        model.head = head.detach()
        if validation:
            on_epoch(epoch, accuracy(model, validation))
            model.encoder.train()
    model.head = head.detach().clone()
    model.encoder.eval()
    model.to("cpu")  # saved and served on CPU
    return model, TrainResult(step, time.perf_counter() - started, loss_value)
