"""API keys stored as SHA-256 hashes: the file, the store that finds a caller's key, revocation.

Both services authenticate callers this way; each declares its own record on top of `StoredKey`
(the gateway's carries limits and a budget, the RAG service's its scopes). This module knows
only ids and hashes, never what a key may do:

    keys:                         # gateway-keys.yaml, rag-keys.yaml: written by `kit ... keys`
      - id: team-search           # appears in logs and metrics instead of the key
        sha256: 5e88...           # sha256 of the key; the key itself is shown once, at creation
        ...                       # the service's own fields

A leaked file or backup reveals no key. A presented key is hashed and looked up, and the hashes
are compared with `hmac.compare_digest` (constant time), so timing reveals nothing of a hash.

Revocation needs no restart. `KeyStore.watching(path, Record)` looks at the file's identity
(inode, size, modification time) at most once every `check_every_s` (1 s) when a key is
presented, and re-reads the file when it changed: `kit gateway keys revoke ID` takes effect on a
running service within a second. The file is replaced atomically (written aside, then renamed),
so a reader sees the old file or the new one, never half of one. A file that no longer parses
(edited by hand) is reported in the log and the last good keys stay in force: refusing every
caller over a typo would be an outage, and no key the operator had revoked in a valid file comes
back. A file that is removed means no keys: every caller is refused (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from kit.core.errors import ConfigError
from kit.core.logging import get_logger

log = get_logger("keys")


class StoredKey(BaseModel):
    """What every key record holds: a name to show, and the hash to find it by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


K = TypeVar("K", bound=StoredKey)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(prefix: str) -> str:
    """A random key: 32 bytes from the OS's CSPRNG, URL-safe, after a recognisable prefix (so
    secret scanners and people can tell which service a leaked key opens)."""
    return prefix + secrets.token_urlsafe(32)


def load_keys(path: Path, record: type[K]) -> list[K]:
    """The records in a keys file; a missing file has none (no one may call yet)."""
    if not path.exists():
        return []
    try:
        data: Any = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict) or set(data) - {"keys"}:
            raise ValueError("the file must hold one mapping, `keys:`, with a list of keys")
        adapter: TypeAdapter[list[K]] = TypeAdapter(list[record])  # type: ignore[valid-type]
        keys = adapter.validate_python(data.get("keys") or [])
    except (OSError, yaml.YAMLError, ValidationError, ValueError) as exc:
        raise ConfigError(
            f"Keys file {path} is invalid: {exc}. Fix it, or recreate it with the `keys` "
            "commands (`kit gateway keys`, `kit rag keys`)."
        ) from None
    ids = [key.id for key in keys]
    if duplicated := sorted({i for i in ids if ids.count(i) > 1}):
        raise ConfigError(f"Keys file {path} has the id {duplicated[0]!r} twice; ids are unique.")
    return keys


def add_key(path: Path, record: type[K], key_id: str, *, prefix: str, **fields: Any) -> str:
    """Create a key, store its hash (and `fields`) in `path`, and return the key, shown once."""
    current = load_keys(path, record)
    if any(k.id == key_id for k in current):
        raise ConfigError(f"A key with id {key_id!r} already exists in {path}; pick another id.")
    key = new_key(prefix)
    _write(path, [*current, record(id=key_id, sha256=hash_key(key), **fields)])
    return key


def revoke_key(path: Path, record: type[StoredKey], key_id: str) -> None:
    """Remove the key `key_id` from `path`; running services stop accepting it within seconds."""
    current = load_keys(path, record)
    remaining = [k for k in current if k.id != key_id]
    if len(remaining) == len(current):
        known = ", ".join(k.id for k in current) or "none"
        raise ConfigError(f"No key with id {key_id!r} in {path} (ids: {known}).")
    _write(path, remaining)


def _write(path: Path, keys: list[Any]) -> None:
    """Write the file owner-only and atomically: a crash or a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"keys": [k.model_dump(mode="json") for k in keys]}, sort_keys=False)
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:  # mkstemp creates it 0600 already
            file.write(text)
        Path(staging).replace(path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


class KeyStore(Generic[K]):
    """The keys a service accepts, found by the key a caller presents.

    `KeyStore(records)` holds a fixed set (tests, the embedded gateway's one-off key);
    `KeyStore.watching(path, Record)` follows the file, so revoked keys stop working at once.
    """

    def __init__(self, keys: Iterable[K]) -> None:
        self._by_hash = {key.sha256: key for key in keys}
        self._refresh: Callable[[], None] = lambda: None

    @classmethod
    def watching(
        cls,
        path: Path,
        record: type[K],
        *,
        check_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> KeyStore[K]:
        """A store that re-reads `path` when it changes (checked at most every `check_every_s`).

        The first read happens here, so a broken file stops start-up with its message."""
        store = cls(load_keys(path, record))
        seen = _identity(path)
        checked = clock()

        def refresh() -> None:
            nonlocal seen, checked
            now = clock()
            if now - checked < check_every_s:
                return
            checked = now
            current = _identity(path)
            if current == seen:
                return
            seen = current
            try:
                keys = load_keys(path, record)
            except ConfigError as exc:
                log.error("keys_file_invalid", path=str(path), error=str(exc), kept=len(store))
                return
            store._by_hash = {key.sha256: key for key in keys}
            log.info("keys_reloaded", path=str(path), keys=len(keys))

        store._refresh = refresh
        return store

    def __len__(self) -> int:
        return len(self._by_hash)

    def find(self, presented: str) -> K | None:
        self._refresh()
        digest = hash_key(presented)
        match = self._by_hash.get(digest)
        if match is None or not hmac.compare_digest(match.sha256, digest):
            return None
        return match


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten or replaced; None when there is no file."""
    try:
        status = path.stat()  # follows symlinks: a Kubernetes Secret volume swaps a link
    except OSError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns)
