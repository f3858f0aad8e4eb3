"""The checks that decide whether the kit loads a registered model: the manifest of its files
(manifest.py) and the MLflow packaging around them (trusted.check_packaging), on folders built
by hand, without MLflow or a model. tests/e2e/test_registry_models_cannot_run_code.py runs the
same refusals against a real registry and gateway.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kit.finetune.manifest import (
    MANIFEST_FILE,
    UntrustedModelError,
    sha256_file,
    verify_folder,
    write_manifest,
)
from kit.finetune.trusted import CODE_LOADER, MODEL_CODE, check_packaging

LABELS = ["card_arrival", "top_up_failed"]


def saved_model(folder: Path) -> Path:
    """The files IntentClassifier.save writes, with stand-in contents."""
    (folder / "encoder").mkdir(parents=True)
    (folder / "encoder" / "config.json").write_text('{"model_type": "bert"}')
    (folder / "encoder" / "model.safetensors").write_bytes(
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "
    )
    (folder / "encoder" / "tokenizer.json").write_text("{}")
    (folder / "head.safetensors").write_bytes(b"tensors")
    (folder / "labels.json").write_text(json.dumps({"labels": LABELS, "max_length": 64}))
    return folder


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Path, str]:
    """A model folder with its manifest, and the digest a run would record."""
    folder = saved_model(tmp_path / "model")
    return folder, write_manifest(folder, "classifier", LABELS)


def test_a_folder_as_logged_verifies_and_its_manifest_lists_every_file(
    logged: tuple[Path, str],
) -> None:
    folder, digest = logged

    manifest = verify_folder(folder, digest)

    assert (manifest.method, manifest.labels) == ("classifier", LABELS)
    assert set(manifest.files) == {
        "encoder/config.json",
        "encoder/model.safetensors",
        "encoder/tokenizer.json",
        "head.safetensors",
        "labels.json",
    }
    assert manifest.files["labels.json"] == sha256_file(folder / "labels.json")
    assert digest == sha256_file(folder / MANIFEST_FILE)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: (f / "labels.json").write_text('{"labels": ["x"]}'), "labels.json was changed"),
        (lambda f: (f / "head.safetensors").unlink(), "head.safetensors was removed"),
        (lambda f: (f / "notes.txt").write_text("hi"), "notes.txt was added"),
        (
            lambda f: (f / "encoder" / "pytorch_model.bin").write_bytes(pickle.dumps(1)),
            "encoder/pytorch_model.bin is not an allowed file type",
        ),
        (lambda f: (f / "loader.py").write_text("import os"), "loader.py is not an allowed"),
        (
            lambda f: (f / "extra.json").symlink_to(f / "labels.json"),
            "extra.json is a link",
        ),
        (lambda f: (f / MANIFEST_FILE).write_text("{}"), "not the manifest recorded"),
    ],
)
def test_any_change_after_logging_is_refused_naming_the_file(
    logged: tuple[Path, str], change: Callable[[Path], object], reason: str
) -> None:
    folder, digest = logged
    change(folder)

    with pytest.raises(UntrustedModelError, match=re.escape(reason)):
        verify_folder(folder, digest)


def test_a_manifest_rewritten_to_list_a_pickle_is_still_refused(logged: tuple[Path, str]) -> None:
    """An attacker who can record their own digest can list any file; pickles stay refused."""
    folder, _ = logged
    (folder / "head.pt").write_bytes(pickle.dumps([1.0]))
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["files"]["head.pt"] = sha256_file(folder / "head.pt")
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(UntrustedModelError, match=re.escape("head.pt is not an allowed file type")):
        verify_folder(folder, sha256_file(folder / MANIFEST_FILE))


def test_the_kit_never_writes_a_manifest_for_a_folder_it_could_not_load(tmp_path: Path) -> None:
    folder = saved_model(tmp_path / "model")
    (folder / "head.pt").write_bytes(b"pickle")

    with pytest.raises(ValueError, match=re.escape("head.pt is not an allowed file type")):
        write_manifest(folder, "classifier", LABELS)
    assert not (folder / MANIFEST_FILE).exists()


# --- the MLflow packaging around the weights ------------------------------------------------


def mlflow_model(root: Path) -> Path:
    """The layout log_intent_model produces: MLmodel, the script, MLflow's files, the weights."""
    weights = saved_model(root / "artifacts" / "intent-model-abc")
    write_manifest(weights, "classifier", LABELS)
    shutil.copy(MODEL_CODE, root / "mlflow_model.py")
    for name in ("conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json"):
        (root / name).write_text("")
    (root / "registered_model_meta").write_text("model_name: intent-router\n")
    flavor = {
        "artifacts": {"model": {"path": "artifacts/intent-model-abc", "uri": "/tmp/x"}},
        "code": None,
        "config": {"method": "classifier", "labels": LABELS},
        "loader_module": CODE_LOADER,
        "model_code_path": "/home/someone/kit/pipelines/finetune/mlflow_model.py",
        "python_version": "3.11.7",
    }
    (root / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": flavor}}))
    return root


def edit_flavor(root: Path, **changes: object) -> None:
    mlmodel = yaml.safe_load((root / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"].update(changes)
    (root / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def test_the_kits_packaging_passes_and_names_the_weights(tmp_path: Path) -> None:
    root = mlflow_model(tmp_path / "version")

    weights, config = check_packaging(root)

    assert weights == root / "artifacts" / "intent-model-abc"
    assert config == {"method": "classifier", "labels": LABELS}


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (
            lambda r: (r / "mlflow_model.py").write_text("import os; os.system('id')\n"),
            "mlflow_model.py is not the kit's",
        ),
        (
            lambda r: edit_flavor(
                r, loader_module="mlflow.pyfunc.model", python_model="python_model.pkl"
            ),
            "python_model python_model.pkl: a pickled object",
        ),
        (lambda r: edit_flavor(r, model_code_path="/x/evil.py"), "script is 'evil.py'"),
        (lambda r: edit_flavor(r, code="code"), "adds code to the import path"),
        (
            lambda r: edit_flavor(r, artifacts={"model": {"path": "artifacts/.."}}),
            "outside the model",
        ),
        (
            lambda r: (r / "MLmodel").write_text(
                yaml.safe_dump({"flavors": {"python_function": {}, "sklearn": {}}})
            ),
            "not python_function alone",
        ),
        (lambda r: (r / "python_model.pkl").write_bytes(b"x"), "python_model.pkl is not an"),
        (lambda r: (r / "code").mkdir() or (r / "code" / "m.py").write_text(""), "code/m.py"),
        (lambda r: (r / "MLmodel").write_text("!!python/object:os.system {}"), "cannot be read"),
    ],
)
def test_packaging_that_is_not_the_kits_is_refused(
    tmp_path: Path, tamper: Callable[[Path], object], reason: str
) -> None:
    root = mlflow_model(tmp_path / "version")
    tamper(root)

    with pytest.raises(UntrustedModelError, match=re.escape(reason)):
        check_packaging(root)
