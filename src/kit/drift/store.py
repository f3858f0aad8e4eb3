"""The sample store: one JSON line per question the RAG service was asked, for drift monitoring.

    {"ts": "2026-11-29T11:44:01.123456+00:00", "question": "How do I add CORS?",
     "top_score": 0.61, "refused": false, "collection": "docs", "embedder": "all-minilm-l6-v2"}

The writer (`QueryLog`, used by the RAG service) and the reader (`read_records`, used by
`kit.drift.collect`) live together so the format has one owner. A plain JSONL file is the
simplest store that survives restarts, needs no server and is read by any tool; swap it for a
table or a queue when the traffic outgrows one file. Embeddings are not stored: the drift job
embeds the questions again (200 questions take about a second), so the log stays small and
readable, and a change of embedder never leaves stale vectors behind.

Privacy: questions are user input and may hold personal data. The file is created readable by
its owner only (0600); RAG_QUERY_LOG=off turns logging off, RAG_QUERY_LOG_SAMPLE_RATE keeps a
share of questions, and nothing here deletes old lines: rotate or prune the file to match your
retention policy (it is reopened on every write, so logrotate needs no `copytruncate`).
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QueryRecord:
    ts: datetime  # when the question was answered, timezone-aware (UTC when written here)
    question: str
    top_score: float | None = None  # the best dense cosine similarity of any chunk
    refused: bool | None = None  # answered "I don't know." (no relevant chunk, or the model)
    collection: str | None = None
    embedder: str | None = None

    def to_json(self) -> str:
        row: dict[str, Any] = {
            "ts": self.ts.isoformat(),
            "question": self.question,
            "top_score": None if self.top_score is None else round(self.top_score, 4),
            "refused": self.refused,
            "collection": self.collection,
            "embedder": self.embedder,
        }
        return json.dumps(row, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> QueryRecord:
        """Parse one line; raises ValueError (or KeyError/TypeError) on a malformed one."""
        row = json.loads(line)
        ts = datetime.fromisoformat(row["ts"])
        if ts.tzinfo is None:  # a hand-made line without an offset: read it as UTC
            ts = ts.replace(tzinfo=UTC)
        question = row["question"]
        if not isinstance(question, str) or not question.strip():
            raise ValueError("empty question")
        score = row.get("top_score")
        refused = row.get("refused")
        return cls(
            ts=ts,
            question=question,
            top_score=None if score is None else float(score),
            refused=None if refused is None else bool(refused),
            collection=row.get("collection"),
            embedder=row.get("embedder"),
        )


class QueryLog:
    """Appends sampled questions to a JSONL file; safe from many threads and processes.

        log = QueryLog(data_dir / "rag-queries.jsonl", sample_rate=0.1)
        if log.sampled():                      # about one question in ten
            log.append(QueryRecord(datetime.now(UTC), "How do I add CORS?"))

    `append` does blocking file I/O: call it from a worker thread (the RAG service hands it to
    FastAPI's background tasks, which run after the response is sent, in the thread pool).
    """

    def __init__(
        self,
        path: Path,
        sample_rate: float = 1.0,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be within [0, 1], got {sample_rate}")
        self.path = path
        self.sample_rate = sample_rate
        self._rng = rng
        self._lock = threading.Lock()

    def sampled(self) -> bool:
        """Whether to keep this question (decided before any work is scheduled)."""
        return self.sample_rate >= 1.0 or self._rng() < self.sample_rate

    def append(self, record: QueryRecord) -> None:
        data = (record.to_json() + "\n").encode()
        # One os.write of the whole line on a descriptor opened with O_APPEND: the kernel moves
        # to the end and writes in one step, so lines from several threads, or several worker
        # processes, never interleave on a local filesystem (not guaranteed on NFS). The lock
        # keeps this process's threads in order too. Reopening per write costs microseconds and
        # follows a file that was rotated away.
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                while data:  # a regular file takes it all at once; loop for the rare short write
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)


@dataclass(frozen=True)
class LogContents:
    records: list[QueryRecord]  # in file order (oldest first, as appended)
    malformed: int  # lines that did not parse: a crash mid-write, or a hand edit


def read_records(path: Path) -> LogContents:
    """Every well-formed record of a query log. A bad line is counted, not fatal: one torn line
    must not stop monitoring. Raises FileNotFoundError for a missing file."""
    records: list[QueryRecord] = []
    malformed = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(QueryRecord.from_json(line))
            except (ValueError, KeyError, TypeError):
                malformed += 1
    return LogContents(records, malformed)
