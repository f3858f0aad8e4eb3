"""BANKING77 for intent routing: 77 labels, deterministic stratified splits, a dataset version.

    train.csv  -> train + validation (stratified by label, seeded): for training and choosing
    test.csv   -> test, untouched: the final number, and the split every model is compared on

The dataset version (a hash of the files' bytes and the row counts) is logged with every run, so
two runs' numbers are comparable only when their versions match. Loading checks the files:
a missing column, an empty text or a test label unseen in training is an error that names
the file and the row.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

from kit.core.errors import ConfigError
from kit.finetune.config import DataSpec


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    labels: list[str]  # sorted; a model's output index i means labels[i]
    version: dict[str, str | int]

    @property
    def test_id(self) -> str:
        """Identifies the exact test rows: champions are compared only on the same ones."""
        digest = hashlib.sha256("\n".join(f"{e.text}\t{e.label}" for e in self.test).encode())
        return digest.hexdigest()[:16]


def read_csv(path: Path) -> list[Example]:
    if not path.exists():
        raise ConfigError(f"Dataset file {path} not found (run from the repository root).")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"text", "category"} <= set(reader.fieldnames or ()):
            raise ConfigError(f"{path} needs the columns text,category; it has {reader.fieldnames}")
        examples = []
        for line, row in enumerate(reader, start=2):
            text, label = (row["text"] or "").strip(), (row["category"] or "").strip()
            if not text or not label:
                raise ConfigError(f"{path}:{line}: empty text or category")
            examples.append(Example(text, label))
    return examples


def _stratified_sample(rows: list[Example], size: int | None, seed: int) -> list[Example]:
    if size is None or size >= len(rows):
        return rows
    kept, _ = train_test_split(
        rows, train_size=size, random_state=seed, stratify=[r.label for r in rows]
    )
    return list(kept)


def load_splits(spec: DataSpec, seed: int) -> Splits:
    full_train, test = read_csv(spec.train_file), read_csv(spec.test_file)
    labels = sorted({e.label for e in full_train})
    if unknown := {e.label for e in test} - set(labels):
        raise ConfigError(f"{spec.test_file} has labels absent from training: {sorted(unknown)}")
    train, validation = train_test_split(
        full_train,
        test_size=spec.validation_fraction,
        random_state=seed,
        stratify=[e.label for e in full_train],
    )
    train = _stratified_sample(list(train), spec.train_limit, seed)
    if spec.train_on_validation:
        train = train + list(validation)
    test = _stratified_sample(test, spec.test_limit, seed)
    return Splits(train, list(validation), test, labels, dataset_version(spec, full_train, test))


def dataset_version(
    spec: DataSpec, full_train: Sequence[Example], test: Sequence[Example]
) -> dict[str, str | int]:
    digest = hashlib.sha256()
    for path in (spec.train_file, spec.test_file):
        digest.update(path.read_bytes())
    return {
        "sha256": digest.hexdigest()[:16],
        "train_file_rows": len(full_train),
        "test_rows": len(test),
        "labels": len(Counter(e.label for e in full_train)),
    }
