"""Fine-tuning configs and data: validated before anything loads, split the same way every time."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kit.core.errors import ConfigError
from kit.finetune.config import CONFIGS, DataSpec, load_config
from kit.finetune.data import load_splits, read_csv


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path: Path) -> None:
    config = load_config(path)

    assert config.name == path.stem
    assert (config.lora is not None) == (config.method == "lora")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\nmethod: classifier\ntrain: {learning_rte: 0.1}\n", "train.learning_rte"),
        ("name: x\nmethod: svm\n", "method"),
        ("name: x\nmethod: lora\n", "needs a `lora:` section"),
        ("name: x\nmethod: classifier\ntrain: {batch_size: 0}\n", "train.batch_size"),
        ("- a list\n", "must be a YAML mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_config_names_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert problem in str(error.value) and str(path) in str(error.value)


def test_a_missing_config_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"quick\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_splits_are_deterministic_stratified_and_leave_test_untouched() -> None:
    spec = DataSpec()
    first, again, other_seed = load_splits(spec, 0), load_splits(spec, 0), load_splits(spec, 1)
    test_file = read_csv(spec.test_file)

    assert first.train == again.train and first.validation == again.validation
    assert first.train != other_seed.train
    assert first.test == test_file and first.test_id == other_seed.test_id
    assert len(first.labels) == 77
    assert {e.label for e in first.validation} == set(first.labels)  # every label validated
    # train and validation partition the train file: every row in exactly one of them
    assert Counter(first.train) + Counter(first.validation) == Counter(read_csv(spec.train_file))
    assert len(first.validation) == 1001


def test_limits_sample_every_label_and_change_the_test_id() -> None:
    full = load_splits(DataSpec(), 0)
    small = load_splits(DataSpec(train_limit=770, test_limit=385), 0)

    assert len(small.train) == 770 and len(small.test) == 385
    assert {e.label for e in small.train} == set(full.labels)
    assert small.test_id != full.test_id


def test_bad_data_files_get_a_clear_error(tmp_path: Path) -> None:
    no_column = tmp_path / "a.csv"
    no_column.write_text("query,intent\nhello,greet\n")
    empty_text = tmp_path / "b.csv"
    empty_text.write_text('text,category\n"",card_arrival\n')

    with pytest.raises(ConfigError, match="needs the columns text,category"):
        read_csv(no_column)
    with pytest.raises(ConfigError, match=r"b.csv:2: empty text"):
        read_csv(empty_text)
    with pytest.raises(ConfigError, match="not found"):
        read_csv(tmp_path / "missing.csv")
