"""A `kit ingest` killed with SIGKILL midway, then re-run: nothing duplicated, nothing missing.

Chunk ids are content hashes and each batch is stored before the next is embedded, so a re-run
finds the stored batches unchanged and embeds only the rest. The test kills the process for
real once the first batches are on disk, then compares the index with the chunks the corpus
should produce, computed here without embedding anything.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from kit.rag.chunk import ChunkingConfig, chunk_document
from kit.rag.documents import Document
from kit.rag.loaders import load_file
from kit.rag.paths import DocsRoot, discover

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]
DOCS_ROOT = REPO / "data"  # KIT_DOCS_ROOT's default, for `kit` run from the repository
CORPUS = DOCS_ROOT / "fastapi-docs/docs/tutorial"
# Slow tier, run by `make test-all` only: ingests the corpus, kills the job and resumes it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def expected_chunk_ids(corpus: Path) -> set[str]:
    ids: set[str] = set()
    root = DocsRoot.at(DOCS_ROOT)  # chunk ids hash the document id, which is relative to it
    for file in discover([corpus], root):
        assert isinstance(file, Path), file
        for item in load_file(file, root.path):
            if isinstance(item, Document):
                ids |= {chunk.id for chunk in chunk_document(item, ChunkingConfig())}
    return ids


def stored_points(storage: Path) -> int:
    """Points on disk, read while the ingest process writes them (Qdrant local mode keeps a
    collection in one sqlite file; sqlite lets a second process read)."""
    if not storage.exists():
        return 0
    with sqlite3.connect(f"file:{storage}?mode=ro", uri=True, timeout=5) as db:
        try:
            return int(db.execute("SELECT count(*) FROM points").fetchone()[0])
        except sqlite3.OperationalError:  # the table is being created
            return 0


def test_a_killed_ingest_resumes_without_duplicates_or_gaps(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIT_", "QDRANT_", "MLFLOW_"))}
    env |= {"KIT_ENV": "test", "KIT_DATA_DIR": str(data), "KIT_LOG_LEVEL": "WARNING"}
    expected = expected_chunk_ids(CORPUS)
    storage = data / "qdrant" / "collection" / "docs" / "storage.sqlite"

    process = subprocess.Popen(
        [KIT, "ingest", str(CORPUS)], env=env, cwd=REPO, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    while stored_points(storage) == 0 and process.poll() is None:
        assert time.monotonic() < deadline, "no chunk was stored within 10 minutes"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    at_kill = stored_points(storage)

    resumed = subprocess.run(
        [KIT, "ingest", str(CORPUS), "--strict"], env=env, cwd=REPO, capture_output=True, text=True
    )
    report = json.loads(sorted((data / "reports").glob("ingest-*.json"))[-1].read_text())
    client = QdrantClient(path=str(data / "qdrant"))
    stored: list[str] = []
    offset = None
    while True:
        points, offset = client.scroll("docs", limit=1000, offset=offset, with_payload=False)
        stored += [str(point.id) for point in points]
        if offset is None:
            break
    client.close()

    assert process.returncode == -signal.SIGKILL, "the first run finished before it was killed"
    assert 0 < at_kill < len(expected)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # The re-run embedded only what the killed run had not stored...
    assert report["chunks"]["added"] == len(expected) - at_kill
    assert report["chunks"]["unchanged"] == at_kill
    # ...and the index holds every expected chunk exactly once.
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
