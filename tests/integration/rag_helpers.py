"""Keys for RAG apps under test: an admin key (ask and ingest) and an ask-only one, with the
headers that send them (access itself is tested in test_rag_auth.py and tests/e2e/attacks/);
and a small indexed corpus."""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient

from kit.core.keys import KeyStore, hash_key
from kit.core.ports import Embedder
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.qdrant_store import QdrantStore
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


BACKGROUND_PAGE = (
    "# Background Tasks\n\nBackground tasks run after the response is sent. Declare a parameter "
    "of type BackgroundTasks and call add_task on it."
)


def indexed_docs(
    root: Path, embedder: Embedder, pages: dict[str, str] | None = None
) -> QdrantStore:
    """Write `pages` (default: one page on background tasks) into the docs root `root` and index
    them in an in-memory Qdrant collection "docs"."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (pages or {"background.md": BACKGROUND_PAGE}).items():
        (root / name).write_text(text)
    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([root], store, embedder, IngestOptions(), root=root)
    return store
