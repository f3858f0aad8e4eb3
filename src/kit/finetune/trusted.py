"""Load a registered intent model without running anything the registry holds: the kit's loader.

    models:/intent-router@champion -> version N (the alias is looked up once)
    -> its run's param model_manifest_sha256 (none: logged by an older kit, refused)
    -> version N's files, downloaded into a private temporary folder
    -> MLmodel, read as YAML data: the kit's packaging or refused
         one flavor (python_function), MLflow's models-from-code loader, no code paths,
         and the script byte-identical to the kit's mlflow_model.py (compared, never run)
    -> every file a data type (manifest.py): no pickle anywhere, no code but that script
    -> the weights folder matches the manifest whose digest the run recorded
    -> built by the kit's own classes from safetensors and JSON (trust_remote_code=False)

The gateway's `mlflow` provider, `kit predict` and the promotion gate's champion scoring all
load here. `mlflow.pyfunc.load_model` would instead run the script stored with the version, or
unpickle its python_model, so anyone able to register a version or move an alias could run code
in every process that loads it (and read its provider keys).

The digest is a run param: params live in the tracking database, not the artifact store, and
MLflow refuses to change one once logged. So a person who can write only to the artifact store
(a bucket, a volume) cannot swap files unnoticed. A person who can write runs and the registry
can record the digest of a model of their own making: it is then loaded, and may answer wrong
labels, but it still runs no code of theirs, because nothing here executes what they wrote.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from kit.core.settings import KitSettings
from kit.finetune.manifest import (
    Manifest,
    UntrustedModelError,
    disallowed,
    files_in,
    sha256_file,
    verify_folder,
)

if TYPE_CHECKING:  # evaluate.py imports scikit-learn, which a gateway need not load
    from kit.finetune.evaluate import IntentModel

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")  # what log_intent_model stores
MANIFEST_PARAM = "model_manifest_sha256"
CODE_LOADER = "mlflow.pyfunc.loaders.code_model"  # MLflow's loader for models from code
# Files MLflow writes beside the model and the kit never reads (environments, examples, the
# registry's note): data types only, so a pickle or a module cannot hide among them.
MLFLOW_FILES = frozenset({"MLmodel", "registered_model_meta"})
MLFLOW_SUFFIXES = frozenset({".yaml", ".json", ".txt"})
RETRAIN = (
    "Train and register a new version: kit finetune --config "
    "pipelines/finetune/configs/default.yaml"
)
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION`."""

    name: str
    alias: str | None
    version: str | None

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        match = _URI.match(uri)
        if match is None:
            raise ValueError(f"{uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
        return cls(match["name"], match["alias"], match["version"])


@dataclass(frozen=True)
class Verified:
    """A version's files, checked: the weights folder and what its manifest says."""

    name: str
    version: str
    weights: Path
    manifest: Manifest


def resolve_version(ref: ModelRef, tracking_uri: str) -> str:
    """The version `ref` names now (an alias is looked up); raises MlflowException if none."""
    if ref.version is not None:
        return ref.version
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    return str(client.get_model_version_by_alias(ref.name, str(ref.alias)).version)


def load_uri(
    uri: str, tracking_uri: str, settings: KitSettings | None = None
) -> tuple[str, IntentModel]:
    """(version, model) for a registry URI: the one call `kit predict` and the gate need."""
    ref = ModelRef.parse(uri)
    version = resolve_version(ref, tracking_uri)
    return version, load_version(ref.name, version, tracking_uri, settings)


def load_version(
    name: str, version: str, tracking_uri: str, settings: KitSettings | None = None
) -> IntentModel:
    """Version `version` of `name`, verified and built; raises `UntrustedModelError` if refused."""
    with tempfile.TemporaryDirectory(prefix="kit-model-", ignore_cleanup_errors=True) as folder:
        verified = fetch(name, version, tracking_uri, Path(folder))
        # Once built, the model needs no file of the folder: the weights are in memory (or in
        # a memory map, which outlives the file on Linux and macOS; elsewhere the deletion
        # fails quietly and the operating system's temporary-file cleanup takes it).
        return build(verified, settings)


def refusal(uri: str, tracking_uri: str) -> str | None:
    """Why the kit would refuse to load the version `uri` names, or None: the checks, no build."""
    ref = ModelRef.parse(uri)
    version = resolve_version(ref, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="kit-model-", ignore_cleanup_errors=True) as folder:
        try:
            fetch(ref.name, version, tracking_uri, Path(folder))
        except UntrustedModelError as exc:
            return str(exc)
    return None


def fetch(name: str, version: str, tracking_uri: str, into: Path) -> Verified:
    """Download version `version` of `name` into `into` and run every check on it."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    found = client.get_model_version(name, version)
    digest = client.get_run(found.run_id).data.params.get(MANIFEST_PARAM) if found.run_id else None
    if not digest:
        raise UntrustedModelError(
            f"{name} v{version} refused: its run recorded no {MANIFEST_PARAM}, so its files "
            "cannot be verified (it was logged by a kit older than this check, or not by "
            f"`kit finetune`). {RETRAIN}"
        )
    # Where the version's files are (a path, or mlflow-artifacts:/ on a server), asked of this
    # client: downloading "models:/NAME/N" would resolve it with MLflow's process-wide registry
    # URI instead, whatever `tracking_uri` says.
    location = client.get_model_version_download_uri(name, version)
    root = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(into), tracking_uri=tracking_uri
        )
    )
    try:
        weights, config = check_packaging(root)
        manifest = verify_folder(weights, digest)
        if config != {"method": manifest.method, "labels": manifest.labels}:
            raise UntrustedModelError(
                "the method and labels in MLmodel are not those in its manifest"
            )
    except UntrustedModelError as exc:
        raise UntrustedModelError(
            f"{name} v{version} refused: {exc}. The kit loads only models that `kit finetune` "
            "logged, unchanged since: point the alias back at one, or train a new one with "
            "kit finetune --config pipelines/finetune/configs/default.yaml"
        ) from None
    return Verified(name, version, weights, manifest)


def check_packaging(root: Path) -> tuple[Path, dict[str, Any]]:
    """Check that the MLflow model in `root` is packaged as `log_intent_model` packages it, and
    that its files outside the weights are MLflow's data files; returns (the weights folder, the
    model config). Reads files as data only."""
    try:
        mlmodel = yaml.safe_load((root / "MLmodel").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UntrustedModelError(f"its MLmodel file cannot be read ({exc})") from None
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    if not isinstance(flavors, dict) or set(flavors) != {"python_function"}:
        names = sorted(flavors) if isinstance(flavors, dict) else flavors
        raise UntrustedModelError(f"its flavors are {names}, not python_function alone")
    flavor = flavors["python_function"]
    if not isinstance(flavor, dict):
        raise UntrustedModelError("its python_function flavor is not a mapping")
    if "python_model" in flavor or flavor.get("loader_module") != CODE_LOADER:
        raise UntrustedModelError(
            f"it is loaded by {flavor.get('loader_module')} with python_model "
            f"{flavor.get('python_model')}: a pickled object, which runs code when unpickled"
        )
    if flavor.get("code"):
        raise UntrustedModelError(f"it adds code to the import path ({flavor['code']})")
    script = PurePosixPath(str(flavor.get("model_code_path", ""))).name
    if script != MODEL_CODE.name or not (root / script).is_file():
        raise UntrustedModelError(f"its models-from-code script is {script!r}, not the kit's")
    if sha256_file(root / script) != sha256_file(MODEL_CODE):
        raise UntrustedModelError(
            f"its models-from-code script {script} is not the kit's (the sha256 differs); "
            "MLflow would run it to load the model"
        )
    weights = root / _weights_path(flavor.get("artifacts"))
    for relative, path in files_in(root).items():
        if path.is_relative_to(weights) or relative in MLFLOW_FILES or relative == script:
            continue
        if "/" in relative or PurePosixPath(relative).suffix not in MLFLOW_SUFFIXES:
            raise UntrustedModelError(disallowed(relative) or f"{relative} is not expected there")
    return weights, flavor.get("config") or {}


def _weights_path(artifacts: Any) -> PurePosixPath:
    """`artifacts/<folder>`, the one artifact `log_intent_model` logs (named "model")."""
    try:
        path = PurePosixPath(artifacts["model"]["path"])
    except (TypeError, KeyError):
        raise UntrustedModelError("it has no `model` artifact") from None
    if len(artifacts) != 1 or len(path.parts) != 2 or path.parts[0] != "artifacts":
        raise UntrustedModelError(f"its artifacts are {artifacts!r}, not one weights folder")
    if path.parts[1] in ("..", "."):
        raise UntrustedModelError(f"its weights folder {path} is outside the model")
    return path


def build(verified: Verified, settings: KitSettings | None = None) -> IntentModel:
    """The model, built by the kit's own classes from the verified weights folder."""
    if verified.manifest.method == "classifier":
        from kit.finetune.classifier import IntentClassifier

        return IntentClassifier.load(verified.weights)
    from kit.finetune.lora import LoraIntentGenerator

    return LoraIntentGenerator.load(
        verified.weights, settings, expected_labels=verified.manifest.labels
    )
