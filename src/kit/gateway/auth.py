"""The gateway's API keys: who may call it, with what limits, budget and concurrency.

Keys are stored hashed, found and revoked by the shared key store (src/kit/core/keys.py);
this module adds what a gateway key carries:

    keys:
      - id: team-search           # appears in logs and metrics instead of the key
        sha256: 5e88...           # sha256 of the key
        tenant: search            # who shares cached answers (default: the key's own id)
        rpm: 60                   # requests per minute
        tpm: 100000               # tokens per minute (prompt + completion)
        budget_usd: 25.0          # total spend allowed; refused once reached
        max_concurrent: 8         # requests in flight at once (default GATEWAY_MAX_CONCURRENT)

`tenant` is the boundary of the response caches: keys of one tenant may be served each other's
cached answers, keys of different tenants never are (src/kit/gateway/cache.py). By default each
key is its own tenant; give several keys of one application the same tenant to share hits.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kit.core import keys as stored
from kit.core.keys import KeyStore, StoredKey, hash_key

__all__ = [
    "OPEN_ACCESS",
    "ApiKey",
    "KeyStore",
    "add_key",
    "hash_key",
    "load_keys",
    "revoke_key",
    "watch_keys",
]

KEY_PREFIX = "sk-kit-"


class ApiKey(StoredKey):
    tenant: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Keys with the same tenant share cached answers; None: the key's own id.",
    )
    rpm: int | None = Field(None, ge=1, description="None: no request limit")
    tpm: int | None = Field(None, ge=1, description="None: no token limit")
    budget_usd: float | None = Field(None, ge=0, description="None: no budget")
    max_concurrent: int | None = Field(
        None, ge=1, description="Requests in flight at once; None: GATEWAY_MAX_CONCURRENT."
    )

    @property
    def tenant_id(self) -> str:
        return self.tenant or self.id


# Used when GATEWAY_AUTH=open: everyone is this one caller, with no limits.
OPEN_ACCESS = ApiKey(id="open", sha256="0" * 64)


def new_key() -> str:
    return stored.new_key(KEY_PREFIX)


def load_keys(path: Path) -> list[ApiKey]:
    return stored.load_keys(path, ApiKey)


def watch_keys(path: Path) -> KeyStore[ApiKey]:
    """The keys in `path`, re-read when the file changes: a revoked key stops working within
    about a second, without a restart (src/kit/core/keys.py)."""
    return KeyStore.watching(path, ApiKey)


def revoke_key(path: Path, key_id: str) -> None:
    stored.revoke_key(path, ApiKey, key_id)


def add_key(
    path: Path,
    key_id: str,
    *,
    rpm: int | None,
    tpm: int | None,
    budget_usd: float | None,
    tenant: str | None = None,
    max_concurrent: int | None = None,
) -> str:
    """Create a gateway key, store its hash in `path`, and return the key (shown once)."""
    return stored.add_key(
        path,
        ApiKey,
        key_id,
        prefix=KEY_PREFIX,
        rpm=rpm,
        tpm=tpm,
        budget_usd=budget_usd,
        tenant=tenant,
        max_concurrent=max_concurrent,
    )
