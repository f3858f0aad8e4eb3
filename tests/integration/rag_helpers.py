"""Keys for RAG apps under test: an admin key (ask and ingest) and an ask-only one, with the
headers that send them. Access itself is tested in test_rag_auth.py and tests/e2e/attacks/."""

from __future__ import annotations

from kit.core.keys import KeyStore, hash_key
from kit.rag_service.auth import ADMIN_SCOPES, KEY_PREFIX, RagKey

ADMIN_KEY = f"{KEY_PREFIX}test-admin"
ASK_KEY = f"{KEY_PREFIX}test-asker"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
ASKER = {"authorization": f"Bearer {ASK_KEY}"}


def rag_keys() -> KeyStore[RagKey]:
    """A fixed key store: "admin" may ask and ingest, "asker" may only ask."""
    return KeyStore(
        [
            RagKey(id="admin", sha256=hash_key(ADMIN_KEY), scopes=ADMIN_SCOPES),
            RagKey(id="asker", sha256=hash_key(ASK_KEY), scopes=("ask",)),
        ]
    )
