"""The RAG service's API keys: who may ask, and who may also make the server ingest.

Keys are stored hashed, found and revoked by the shared key store (src/kit/core/keys.py), in
a file of their own (RAG_KEYS_FILE, default KIT_DATA_DIR/rag-keys.yaml) and with a prefix of
their own, so a gateway key opens nothing here and a RAG key spends nothing at the gateway:

    keys:
      - id: web-app               # appears in logs instead of the key
        sha256: 5e88...           # sha256 of the key
        scopes: [ask]             # POST /ask                     (kit rag keys create --id web-app)
      - id: ops
        sha256: 9f86...
        scopes: [ask, ingest]     # and POST /ingest, GET /ingest/{id}   (... --id ops --admin)

Ingestion makes the server read files and spend minutes of CPU and embedding, and `prune`
deletes documents, so it is a scope of its own that only admin keys carry: a key handed to a
front end can ask questions, nothing more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from kit.core import keys as stored
from kit.core.keys import KeyStore, StoredKey

KEY_PREFIX = "sk-kit-rag-"  # so people and secret scanners tell it from a gateway key
Scope = Literal["ask", "ingest"]
ADMIN_SCOPES: tuple[Scope, ...] = ("ask", "ingest")


class RagKey(StoredKey):
    scopes: tuple[Scope, ...] = Field(
        ("ask",), min_length=1, description="ask: POST /ask. ingest: POST and GET /ingest."
    )


# Used when RAG_AUTH=open (development only): everyone is this one caller, with every scope.
OPEN_ACCESS = RagKey(id="open", sha256="0" * 64, scopes=ADMIN_SCOPES)


def add_key(path: Path, key_id: str, *, admin: bool = False) -> str:
    """Create a key (with the ingest scope if `admin`), store its hash in `path`, and return
    the key, which is shown once."""
    scopes = ADMIN_SCOPES if admin else ("ask",)
    return stored.add_key(path, RagKey, key_id, prefix=KEY_PREFIX, scopes=scopes)


def load_keys(path: Path) -> list[RagKey]:
    return stored.load_keys(path, RagKey)


def watch_keys(path: Path) -> KeyStore[RagKey]:
    """The keys in `path`, re-read when the file changes: a revoked key stops working within
    about a second, without a restart."""
    return KeyStore.watching(path, RagKey)


def revoke_key(path: Path, key_id: str) -> None:
    stored.revoke_key(path, RagKey, key_id)
