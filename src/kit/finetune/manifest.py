"""The manifest of a saved intent model: which files it holds and their sha256, nothing else.

    write_manifest(folder, method, labels) -> digest    when the model is logged (packaging.py)
    verify_folder(folder, digest) -> Manifest            before it is loaded (trusted.py)

The manifest is `kit-manifest.json` in the model's folder, so it travels with the weights:

    {"format": 1, "method": "classifier", "labels": [...],
     "files": {"encoder/model.safetensors": "9f86d0...", "labels.json": "2c26b4...", ...}}

Its own sha256, the digest, is recorded outside the artifact store (packaging.py logs it as a run
param), so changing any file, or adding or removing one, after the model was logged is caught.
Only data formats are allowed: weights as safetensors, configuration and tokenizers as JSON or
text. A pickle (.bin, .pt, .pkl, .joblib) runs code when it is loaded and source code (.py) is
code, so neither is ever in a model the kit writes or loads. This module knows nothing of MLflow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from kit.core.errors import ModelUnavailableError

MANIFEST_FILE = "kit-manifest.json"
FORMAT = 1
# Every file in a model folder ends in one of these. safetensors is a JSON header plus raw
# tensor bytes (no code); .json/.txt are configuration, tokenizers and vocabularies; peft writes
# a README.md model card beside an adapter.
ALLOWED_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".md"})


class UntrustedModelError(ModelUnavailableError):
    """A model the kit refuses to load: not packaged by the kit, or changed since it was."""

    type = "untrusted_model"


@dataclass(frozen=True)
class Manifest:
    method: str
    labels: list[str]
    files: dict[str, str]  # path relative to the folder (posix) -> sha256


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def disallowed(relative: str) -> str | None:
    """Why a file may not be part of a model (None when it may)."""
    suffix = Path(relative).suffix.lower()
    if suffix in ALLOWED_SUFFIXES:
        return None
    return (
        f"{relative} is not an allowed file type (a model holds only "
        f"{', '.join(sorted(ALLOWED_SUFFIXES))} files; pickles and code are refused)"
    )


def files_in(folder: Path) -> dict[str, Path]:
    """Every file under `folder` by its relative posix path; links and special files refused."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise UntrustedModelError(f"{relative} is a link or a special file, not a plain file")
        if path.is_file():
            found[relative] = path
    return found


def write_manifest(folder: Path, method: str, labels: list[str]) -> str:
    """Write `folder`'s manifest into it and return the manifest's sha256 (its digest).

    Raises `ValueError` for a file the loader would refuse: the kit never logs a model it could
    not load back."""
    files = files_in(folder)
    files.pop(MANIFEST_FILE, None)  # written again below
    for relative in files:
        if (why := disallowed(relative)) is not None:
            raise ValueError(f"Cannot package the model in {folder}: {why}.")
    manifest = {
        "format": FORMAT,
        "method": method,
        "labels": labels,
        "files": {relative: sha256_file(path) for relative, path in files.items()},
    }
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return sha256_file(path)


def verify_folder(folder: Path, digest: str) -> Manifest:
    """The manifest of `folder`, after checking that it is the one whose digest was recorded and
    that the folder holds exactly its files, unchanged. Raises `UntrustedModelError` naming the
    first problem found."""
    files = files_in(folder)
    if MANIFEST_FILE not in files:
        raise UntrustedModelError(f"it has no {MANIFEST_FILE}")
    if sha256_file(files.pop(MANIFEST_FILE)) != digest:
        raise UntrustedModelError(
            f"{MANIFEST_FILE} is not the manifest recorded when the model was logged "
            "(its sha256 differs): the artifacts were changed after logging"
        )
    manifest = _parse(folder / MANIFEST_FILE)
    for relative in sorted(set(files) | set(manifest.files)):
        if (why := disallowed(relative)) is not None:
            raise UntrustedModelError(why)
        if relative not in manifest.files:
            raise UntrustedModelError(f"{relative} was added after the model was logged")
        if relative not in files:
            raise UntrustedModelError(f"{relative} was removed after the model was logged")
        if sha256_file(files[relative]) != manifest.files[relative]:
            raise UntrustedModelError(
                f"{relative} was changed after the model was logged (its sha256 differs)"
            )
    return manifest


def _parse(path: Path) -> Manifest:
    try:
        raw = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UntrustedModelError(f"{MANIFEST_FILE} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UntrustedModelError(f"{MANIFEST_FILE} is not a format {FORMAT} kit manifest")
    method, labels, files = raw.get("method"), raw.get("labels"), raw.get("files")
    if (
        method not in ("classifier", "lora")
        or not isinstance(labels, list)
        or not labels
        or not all(isinstance(label, str) for label in labels)
        or not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise UntrustedModelError(f"{MANIFEST_FILE} lacks a valid method, labels or files")
    return Manifest(method, labels, files)
