"""The kit's one loader for registered models (src/kit/finetune/trusted.py), on the sqlite store:
what `kit finetune` logs loads back unchanged, `kit predict` uses it and names the fix when it
refuses, and the promotion gate replaces a champion it refuses instead of keeping it.

Models are tiny classifiers (tests/support/intent_models.py) logged with the kit's own
`log_intent_model`, so each test takes seconds. The attack itself, against a gateway process, is
tests/e2e/test_registry_models_cannot_run_code.py.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kit.cli.app import app
from kit.core import tracking
from kit.core.settings import KitSettings
from kit.finetune.config import CONFIGS, load_config
from kit.finetune.manifest import MANIFEST_FILE, UntrustedModelError
from kit.finetune.packaging import log_intent_model
from kit.finetune.registry import register_and_gate
from kit.finetune.trusted import MANIFEST_PARAM, load_uri, refusal
from tests.support import intent_models
from tests.support.intent_models import LABELS, MODEL_NAME, copy_of, register_crafted

QUERIES = ["I still have not received my new card", "what rate do you use", "top up failed"]


@dataclass
class Store:
    settings: KitSettings
    uri: str
    mlflow: Any


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    settings = KitSettings(
        _env_file=None,
        environment="test",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )
    monkeypatch.setenv("KIT_DATA_DIR", str(settings.data_dir))  # for `kit predict`
    monkeypatch.setenv("KIT_CACHE_DIR", str(settings.cache_dir))
    mlflow = tracking.start(settings, "finetune-intent")
    yield Store(settings, tracking.tracking_uri(settings), mlflow)


def legacy_version(store: Store, good: str, work: Path) -> str:
    """`good` as a kit before the manifest logged it: same files, no manifest, no digest."""
    root = intent_models.download_version(store.uri, good, work / "download")
    legacy = copy_of(root, work / "legacy")
    (intent_models.weights_of(legacy) / MANIFEST_FILE).unlink()
    return register_crafted(store.uri, legacy, alias="champion")


def test_a_logged_model_loads_back_predicting_the_same_labels(store: Store) -> None:
    model = intent_models.tiny_classifier()
    version = intent_models.log_kit_model(store.mlflow, model, alias="champion")
    client = store.mlflow.MlflowClient()
    run = client.get_run(client.get_model_version(MODEL_NAME, version).run_id)

    loaded_version, loaded = load_uri(f"models:/{MODEL_NAME}@champion", store.uri)

    assert loaded_version == version == "1"
    assert loaded.predict(QUERIES) == model.predict(QUERIES)
    assert set(loaded.predict(QUERIES)) <= set(LABELS)
    assert len(run.data.params[MANIFEST_PARAM]) == 64  # the manifest's sha256, hex
    with tempfile.TemporaryDirectory() as folder:
        root = intent_models.download_version(store.uri, version, Path(folder))
        files = {p.name for p in intent_models.weights_of(root).rglob("*") if p.is_file()}
    assert {"head.safetensors", "model.safetensors", MANIFEST_FILE} <= files
    assert not {name for name in files if name.endswith((".pt", ".bin", ".pkl"))}


def test_kit_predict_labels_with_the_champion_and_refuses_an_unverifiable_one(
    store: Store, tmp_path: Path
) -> None:
    good = intent_models.log_kit_model(
        store.mlflow, intent_models.tiny_classifier(), alias="champion"
    )
    runner = CliRunner()
    served = runner.invoke(app, ["predict", *QUERIES[:2]])
    legacy = legacy_version(store, good, tmp_path)
    refused = runner.invoke(app, ["predict", QUERIES[0]], env={"COLUMNS": "500"})

    assert served.exit_code == 0, served.output
    lines = [line.split("\t") for line in served.stdout.splitlines()]
    assert [text for _, text in lines] == QUERIES[:2]
    assert {label for label, _ in lines} <= set(LABELS)
    assert refused.exit_code == 1
    assert f"{MODEL_NAME} v{legacy} refused" in refused.output
    assert f"no {MANIFEST_PARAM}" in refused.output and "kit finetune" in refused.output
    assert "Traceback" not in refused.output


def test_the_gate_replaces_a_champion_the_kit_cannot_load(store: Store, tmp_path: Path) -> None:
    good = intent_models.log_kit_model(store.mlflow, intent_models.tiny_classifier())
    legacy = legacy_version(store, good, tmp_path)
    client = store.mlflow.MlflowClient()
    # The old champion scored better on these very rows: only its being unloadable moves it.
    client.set_model_version_tag(MODEL_NAME, legacy, "test_id", "rows-1")
    client.set_model_version_tag(MODEL_NAME, legacy, "test_accuracy", "0.99")

    with pytest.raises(UntrustedModelError):
        load_uri(f"models:/{MODEL_NAME}@champion", store.uri)
    with store.mlflow.start_run(), tempfile.TemporaryDirectory() as folder:
        model = intent_models.tiny_classifier(seed=1)
        model.save(Path(folder))
        uri = log_intent_model(load_config(CONFIGS / "quick.yaml"), Path(folder), LABELS)
        decision = register_and_gate(
            store.mlflow,
            uri,
            MODEL_NAME,
            accuracy=0.5,
            test_id="rows-1",
            margin=0.002,
            score_champion=lambda champion: pytest.fail("the champion was not to be scored"),
            refusal=lambda champion: refusal(champion, store.uri),
        )

    assert decision.promoted and decision.champion_version == legacy
    assert decision.reason.startswith(f"champion v{legacy} cannot be served: ")
    assert f"no {MANIFEST_PARAM}" in decision.reason
    version, _ = load_uri(f"models:/{MODEL_NAME}@champion", store.uri)
    assert version == decision.version


def registry_provider(store: Store, model: str) -> Any:
    from kit.gateway.config import Deployment, ResolvedDeployment
    from kit.gateway.providers.registry import RegistryProvider

    spec = Deployment(provider="mlflow", model=model)
    deployment = ResolvedDeployment(name="intents", spec=spec, api_key=None, api_base=None)
    return RegistryProvider(deployment, store.uri, refresh_s=0)  # look the alias up every call


def test_the_gateway_provider_keeps_serving_through_a_refused_version(
    store: Store, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from kit.gateway.providers.base import ChatCall, ProviderError

    good = intent_models.log_kit_model(
        store.mlflow, intent_models.tiny_classifier(), alias="champion"
    )
    # MLflow's process-wide URI is elsewhere, as in a gateway embedded in another program: the
    # provider must use the store it was given, for the alias and for the files.
    tracking.point_mlflow_at(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    champion = registry_provider(store, f"models:/{MODEL_NAME}@champion")
    call = ChatCall([{"role": "user", "content": QUERIES[0]}])

    def served_by() -> str:
        return str(asyncio.run(champion.chat(call, timeout=60)).body["model"])

    before = served_by()
    legacy = legacy_version(store, good, tmp_path)  # the alias moves to an unverifiable version
    during = served_by()
    MlflowClient(store.uri).set_registered_model_alias(MODEL_NAME, "champion", good)
    after = served_by()
    pinned = registry_provider(store, f"models:/{MODEL_NAME}/{legacy}")
    with pytest.raises(ProviderError) as refused:
        asyncio.run(pinned.chat(call, timeout=60))

    assert before == during == after == f"{MODEL_NAME}/{good}"
    assert refused.value.status == 503
    assert f"{MODEL_NAME} v{legacy} refused" in str(refused.value)
