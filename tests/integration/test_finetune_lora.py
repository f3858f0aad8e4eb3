"""LoRA fine-tuning of SmolLM2 for real on CPU: a 4-label task learnt, saved, loaded, refused.

One small training run (15 steps of 4 rows) is shared by the module's tests; the base checkpoint
is converted once per test session into the shared cache folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from kit.core.errors import ModelUnavailableError
from kit.core.settings import KitSettings
from kit.finetune.config import FinetuneConfig
from kit.finetune.data import Example
from kit.finetune.lora import LoraIntentGenerator, train_lora

# Slow tier, run by `make test-all` only: fine-tunes a model with LoRA adapters.
pytestmark = pytest.mark.slow

QUERIES = {
    "card_arrival": [
        "When will my new card arrive?",
        "My card still has not arrived.",
        "How long until the card gets here?",
        "I ordered a card last week and it is not here yet.",
        "Where is the card you sent me?",
    ],
    "exchange_rate": [
        "What exchange rate do you use?",
        "How much is one euro in dollars today?",
        "Is your currency rate the market rate?",
        "Which rate applies when I convert pounds?",
        "Tell me the current exchange rate.",
    ],
    "lost_or_stolen_card": [
        "Someone stole my card.",
        "I lost my card on the train.",
        "My wallet with the card was stolen.",
        "I cannot find my card anywhere.",
        "Please block my card, it is lost.",
    ],
    "top_up_failed": [
        "My top up did not work.",
        "Why did topping up my account fail?",
        "The top-up was declined.",
        "I tried to add money but the top up failed.",
        "Top up error again today.",
    ],
}
LABELS = sorted(QUERIES)
ROWS = [Example(text, label) for label, texts in QUERIES.items() for text in texts]


@dataclass
class Trained:
    model: LoraIntentGenerator
    folder: Path
    losses: list[float]
    epochs: list[tuple[int, float]]


@pytest.fixture(scope="module")
def cached_settings(
    shared_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> KitSettings:
    return KitSettings(
        _env_file=None,
        environment="test",
        cache_dir=shared_cache_dir,
        data_dir=tmp_path_factory.mktemp("data"),
    )


@pytest.fixture(scope="module")
def trained(cached_settings: KitSettings, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    config = FinetuneConfig.model_validate(
        {
            "name": "lora-test",
            "method": "lora",
            "lora": {"r": 8, "alpha": 16, "max_new_tokens": 10},
            "train": {
                "max_steps": 15,  # 20 rows / 4 = 5 steps an epoch: 3 epochs
                "batch_size": 4,
                "learning_rate": 2e-3,
                "warmup_fraction": 0.1,
                "log_every": 1,
            },
        }
    )
    losses: list[float] = []
    epochs: list[tuple[int, float]] = []
    model, result = train_lora(
        config,
        ROWS,
        ROWS[::5],  # one query per label: on_epoch gets a real accuracy
        LABELS,
        on_step=lambda step, loss, lr: losses.append(loss),
        on_epoch=lambda epoch, accuracy: epochs.append((epoch, accuracy)),
        settings=cached_settings,
    )
    assert result.steps == 15
    folder = tmp_path_factory.mktemp("lora-model")
    model.save(folder)
    return Trained(model, folder, losses, epochs)


def test_training_lowers_the_loss_and_predicts_only_known_labels(
    trained: Trained, cached_settings: KitSettings
) -> None:
    assert len(trained.losses) == 15
    assert trained.losses[-1] < 0.5 * trained.losses[0]
    assert [epoch for epoch, _ in trained.epochs] == [1, 2, 3]
    assert all(0.0 <= accuracy <= 1.0 for _, accuracy in trained.epochs)

    loaded = LoraIntentGenerator.load(trained.folder, cached_settings)
    texts = [row.text for row in ROWS] + ["What is the weather on Mars?", ""]
    predicted = loaded.predict(texts)

    assert set(predicted) <= set(LABELS)  # off-topic and empty queries still get a label
    assert predicted == trained.model.predict(texts)  # saving and loading changes nothing
    right = sum(p == row.label for p, row in zip(predicted, ROWS, strict=False))
    assert right >= 0.6 * len(ROWS)  # chance is 0.25; this run gets 17 of 20
    # Only the small adapter is saved; the base model stays in the cache.
    assert sum(f.stat().st_size for f in trained.folder.iterdir()) < 20_000_000


def test_generated_text_is_mapped_to_the_nearest_label(trained: Trained) -> None:
    assert trained.model.to_label("  TOP_UP_FAILED \n") == "top_up_failed"
    assert trained.model.to_label("card_arival") == "card_arrival"
    assert trained.model.to_label("exchange rate\nsomething else") == "exchange_rate"
    assert trained.model.to_label("") in LABELS


def test_a_model_for_other_labels_or_another_base_is_refused(
    trained: Trained, cached_settings: KitSettings, tmp_path: Path
) -> None:
    with pytest.raises(ModelUnavailableError, match="trained on other labels"):
        LoraIntentGenerator.load(
            trained.folder, cached_settings, expected_labels=[*LABELS, "age_limit"]
        )

    other_base = tmp_path / "other-base"
    shutil.copytree(trained.folder, other_base)
    meta = json.loads((other_base / "labels.json").read_text())
    meta["base_checkpoint"] = "smollm2-135m-instruct-f32-000000000000"
    (other_base / "labels.json").write_text(json.dumps(meta))
    with pytest.raises(ModelUnavailableError, match="only works on its own base"):
        LoraIntentGenerator.load(other_base, cached_settings)

    with pytest.raises(ModelUnavailableError, match="not a saved LoRA intent model"):
        LoraIntentGenerator.load(tmp_path / "empty", cached_settings)


def test_a_lora_job_is_tracked_registered_and_served_from_the_registry(
    cached_settings: KitSettings, tmp_path: Path
) -> None:
    """The LoRA method through the whole job: MLflow run, pyfunc model, registry, and loading
    back through the kit's verifying loader (as the gateway does)."""
    from kit.core import tracking
    from kit.finetune.config import CONFIGS, load_config
    from kit.finetune.data import read_csv
    from kit.finetune.run import run_finetune
    from kit.finetune.trusted import load_uri

    quick = load_config(CONFIGS / "lora-quick.yaml")
    config = quick.model_copy(
        update={
            "data": quick.data.model_copy(
                update={"train_limit": 77, "test_limit": 77, "train_on_validation": True}
            ),
            "train": quick.train.model_copy(update={"max_steps": 3}),
        }
    )
    settings = cached_settings.model_copy(update={"data_dir": tmp_path / "data"})

    result = run_finetune(config, settings)
    version, served = load_uri(
        "models:/intent-router@champion", tracking.tracking_uri(settings), settings
    )
    labels = served.predict(["I still have not received my new card", "top up failed"])

    assert result.decision.promoted and result.test.rows == 77
    assert version == result.decision.version
    assert result.validation_accuracy is None  # validation rows were trained on: not reported
    known = {e.label for e in read_csv(quick.data.train_file)}
    assert len(labels) == 2 and set(labels) <= known  # only ever one of the 77 intents
