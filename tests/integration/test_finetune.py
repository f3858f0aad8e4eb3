"""The fine-tuning job end to end on the `quick` config: a tracked MLflow run, a registered
version, the promotion gate both ways, the gateway serving the champion, and a crash on record.

One module-scoped registry holds three runs, trained for real on a stratified sample:
    weak    (2 steps)             -> v1, champion: there was none
    quick   (40 steps)            -> v2, champion: beats v1
    weak on other test rows       -> v3, challenger: v2 re-scored on those rows beats it
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from kit.core import tracking
from kit.core.errors import ConfigError
from kit.core.settings import KitSettings
from kit.finetune.config import CONFIGS, FinetuneConfig, load_config
from kit.finetune.run import EXPERIMENT, FinetuneResult, run_finetune
from kit.llm.local_client import LocalClient

# Slow tier, run by `make test-all` only: fine-tunes a model end to end.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass
class Registry:
    settings: KitSettings
    quick: FinetuneConfig
    weak: FinetuneResult
    good: FinetuneResult
    refused: FinetuneResult


def mlflow_client(settings: KitSettings) -> Any:
    from mlflow import MlflowClient

    tracking.start(settings, EXPERIMENT)
    return MlflowClient(tracking.tracking_uri(settings))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path) -> Registry:
    settings = KitSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path_factory.mktemp("finetune-data"),
        cache_dir=shared_cache_dir,
    )
    quick = load_config(CONFIGS / "quick.yaml")
    weak = quick.model_copy(
        update={"name": "weak", "train": quick.train.model_copy(update={"max_steps": 2})}
    )
    other_rows = weak.model_copy(update={"data": quick.data.model_copy(update={"test_limit": 462})})
    return Registry(
        settings,
        quick,
        weak=run_finetune(weak, settings),
        good=run_finetune(quick, settings, config_path=CONFIGS / "quick.yaml"),
        refused=run_finetune(other_rows, settings),
    )


def test_a_run_records_params_metrics_artifacts_and_the_data_version(registry: Registry) -> None:
    client = mlflow_client(registry.settings)
    run = client.get_run(registry.good.run_id)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    evaluation = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    losses = client.get_metric_history(run.info.run_id, "train_loss")

    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.learning_rate"] == "0.0001" and params["method"] == "classifier"
    assert params["base_model"] == "all-minilm-l6-v2" and params["steps"] == "40"
    assert len(params["dataset.sha256"]) == 16 and params["dataset.train_rows"] == "770"
    assert params["system.cpu_count"] and run.data.tags["git_commit"]
    assert [m.step for m in losses] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert losses[-1].value < losses[0].value  # it learned
    metrics = run.data.metrics
    assert metrics["test_accuracy"] == registry.good.test.accuracy > 0.5
    assert 0 < metrics["test_macro_f1"] <= 1 and metrics["peak_memory_mb"] > 100
    assert {"config", "evaluation"} <= artifacts
    assert {
        "evaluation/confusion.png",
        "evaluation/per_class_report.json",
        "evaluation/sample_predictions.json",
    } <= evaluation
    assert client.list_artifacts(run.info.run_id, "config")[0].path.endswith("quick.yaml")


def test_the_gate_promotes_a_better_model_and_refuses_a_worse_one(registry: Registry) -> None:
    client = mlflow_client(registry.settings)
    name = registry.quick.registry.model_name
    weak, good, refused = registry.weak.decision, registry.good.decision, registry.refused.decision

    assert (weak.version, weak.alias, weak.reason) == ("1", "champion", "no champion yet")
    assert (good.version, good.alias, good.champion_version) == ("2", "champion", "1")
    assert good.accuracy >= weak.accuracy + registry.quick.registry.promote_margin
    assert (refused.version, refused.alias) == ("3", "challenger")
    # v3 was scored on other test rows, so the champion was re-scored on those rows
    assert refused.champion_accuracy is not None
    assert refused.champion_accuracy != pytest.approx(good.accuracy, abs=1e-9)
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "3"
    run = client.get_run(registry.refused.run_id)
    assert run.data.params["gate_decision"] == "challenger"
    assert run.data.metrics["gate_champion_accuracy"] == refused.champion_accuracy
    assert "does not beat it" in run.data.tags["gate_reason"]


@pytest.fixture
def gateway(registry: Registry, tmp_path: Path, local_client: LocalClient) -> Iterator[TestClient]:
    from kit.gateway.app import create_app
    from kit.gateway.auth import ApiKey, KeyStore, hash_key
    from kit.gateway.settings import GatewaySettings

    models = tmp_path / "models.yaml"
    models.write_text(
        yaml.safe_dump(
            {
                "default_model": "intent-router",
                "deployments": {
                    "champion": {"provider": "mlflow", "model": "models:/intent-router@champion"},
                    "missing": {"provider": "mlflow", "model": "models:/no-such-model@champion"},
                },
                "models": {"intent-router": ["champion"], "missing": ["missing"]},
            }
        )
    )
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=registry.settings.data_dir,  # the registry's tracking store
        cache_dir=registry.settings.cache_dir,
        models_file=models,
    )
    keys = KeyStore([ApiKey(id="t", sha256=hash_key("sk-test-intents"))])
    app = create_app(settings, local=local_client, keys=keys)
    with TestClient(app, headers={"authorization": "Bearer sk-test-intents"}) as client:
        yield client


def test_the_gateway_serves_the_champion_as_a_model_alias(
    registry: Registry, gateway: TestClient
) -> None:
    labels = set(registry.good.test.report) - {"accuracy", "macro avg", "weighted avg"}
    question = {"role": "user", "content": "I still have not received my new card"}

    answer = gateway.post(
        "/v1/chat/completions", json={"model": "intent-router", "messages": [question]}
    )
    streamed = gateway.post(
        "/v1/chat/completions",
        json={"model": "intent-router", "messages": [question], "stream": True},
    )
    missing = gateway.post(
        "/v1/chat/completions", json={"model": "missing", "messages": [question]}
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    label = body["choices"][0]["message"]["content"]
    assert label in labels and body["model"] == "intent-router/2"
    assert answer.headers["x-kit-deployment"] == "champion"
    assert f'"content":"{label}"' in streamed.text.replace(" ", "")
    assert missing.status_code in (502, 503)
    assert "kit finetune" in missing.json()["error"]["message"]


def test_a_crashed_job_leaves_a_failed_run_with_the_error(
    registry: Registry, tmp_path: Path
) -> None:
    broken = tmp_path / "train.csv"
    broken.write_text("query,intent\nhello,greet\n")
    config = registry.quick.model_copy(
        update={
            "name": "broken",
            "data": registry.quick.data.model_copy(update={"train_file": broken}),
        }
    )

    with pytest.raises(ConfigError, match="needs the columns text,category"):
        run_finetune(config, registry.settings)

    client = mlflow_client(registry.settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [run] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'broken'")
    assert run.info.status == "FAILED"
    assert "needs the columns text,category" in run.data.tags["error"]
    assert "error.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_the_same_job_runs_against_an_mlflow_server(tmp_path: Path, shared_cache_dir: Path) -> None:
    """MLFLOW_TRACKING_URI pointing at a real `mlflow server` on 127.0.0.1: runs, artifacts
    (uploaded over HTTP) and the registry live there, and the champion loads back from it, both
    through the kit's verifying loader and as a plain MLflow pyfunc (for MLflow's own tools)."""
    import mlflow

    from kit.finetune.trusted import load_uri
    from tests.support.servers import free_port, mlflow_server, running

    port = free_port()
    command, env = mlflow_server(
        port,
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
    )
    config = load_config(CONFIGS / "quick.yaml")
    config = config.model_copy(update={"train": config.train.model_copy(update={"max_steps": 5})})
    with running(command, port, tmp_path / "mlflow.log", timeout=120, env=env):
        settings = KitSettings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            data_dir=tmp_path / "client-data",
            cache_dir=shared_cache_dir,
            mlflow_tracking_uri=f"http://127.0.0.1:{port}",
        )
        result = run_finetune(config, settings)
        query = ["I still have not received my new card"]
        version, served = load_uri("models:/intent-router@champion", f"http://127.0.0.1:{port}")
        label = served.predict(query)[0]
        pyfunc = mlflow.pyfunc.load_model("models:/intent-router@champion").predict(query)[0]

    assert result.decision.promoted and result.decision.version == version == "1"
    assert label in set(result.test.report) - {"accuracy", "macro avg", "weighted avg"}
    assert pyfunc == label
    assert not (tmp_path / "client-data" / "mlflow.db").exists()  # nothing stored locally
    uploaded = {path.name for path in (tmp_path / "server-artifacts").rglob("*")}
    assert {"head.safetensors", "kit-manifest.json"} <= uploaded  # the model went to the server
