"""API keys: who may call the gateway, with what limits and budget.

Keys live in a YAML file as SHA-256 hashes, never in clear, so a leaked file or backup reveals no
key; the key itself is shown once, when `kit gateway keys create` makes it:

    keys:
      - id: team-search           # appears in logs and metrics instead of the key
        sha256: 5e88...           # sha256 of the key
        rpm: 60                   # requests per minute
        tpm: 100000               # tokens per minute (prompt + completion)
        budget_usd: 25.0          # total spend allowed; refused once reached

A presented key is hashed and looked up, and the hashes are compared with `hmac.compare_digest`
(constant time), so response timing reveals nothing about a stored hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.errors import ConfigError

KEY_PREFIX = "sk-kit-"


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rpm: int | None = Field(None, ge=1, description="None: no request limit")
    tpm: int | None = Field(None, ge=1, description="None: no token limit")
    budget_usd: float | None = Field(None, ge=0, description="None: no budget")


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKey] = Field(default_factory=list)


# Used when GATEWAY_AUTH=open: everyone is this one caller, with no limits.
OPEN_ACCESS = ApiKey(id="open", sha256="0" * 64)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A random key: 32 bytes from the OS's CSPRNG, URL-safe, with a recognisable prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_hash = {key.sha256: key for key in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def find(self, presented: str) -> ApiKey | None:
        digest = hash_key(presented)
        match = self._by_hash.get(digest)
        if match is None or not hmac.compare_digest(match.sha256, digest):
            return None
        return match


def load_keys(path: Path) -> KeysFile:
    """Read the keys file; a missing file is an empty one (no one may call yet)."""
    if not path.exists():
        return KeysFile()
    try:
        return KeysFile.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"Keys file {path} is invalid: {exc}") from None


def add_key(
    path: Path, key_id: str, *, rpm: int | None, tpm: int | None, budget_usd: float | None
) -> str:
    """Create a key, store its hash in `path`, and return the key (shown to the user once)."""
    current = load_keys(path)
    if any(k.id == key_id for k in current.keys):
        raise ConfigError(f"A key with id {key_id!r} already exists in {path}; pick another id.")
    key = new_key()
    record = ApiKey(id=key_id, sha256=hash_key(key), rpm=rpm, tpm=tpm, budget_usd=budget_usd)
    current.keys.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a temporary file and renamed, so a crash never leaves half a keys file.
    staging = path.with_suffix(".tmp")
    staging.write_text(yaml.safe_dump(current.model_dump(mode="json"), sort_keys=False))
    staging.chmod(0o600)
    staging.replace(path)
    return key
