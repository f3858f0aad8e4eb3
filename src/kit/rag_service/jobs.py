"""POST /ingest's jobs: one worker thread runs them, one at a time, and finished ones expire.

    submit(...)  -> job "queued" -> "running" -> "done" | "failed"      (GET /ingest/{id})
    submit(...) while a job is queued or running -> IngestBusyError naming it    (409)
    a finished job stays readable RAG_INGEST_JOB_TTL_S (an hour), at most MAX_FINISHED of them

Why so strict: a thread per request and a table that never forgets let any caller exhaust the
server's threads and memory by posting /ingest in a loop, and two runs on one collection would
only wait for each other. One worker and one job at a time bound both, and a caller learns at
once that it must wait, instead of queueing work that may no longer be wanted when it starts.

A job's paths are shown as the caller named them; its error says what failed, never the
exception's text (server paths, Qdrant's address), which goes to the log with the job's id.
A job still running when the service stops is abandoned: ingestion is resumable, so running it
again stores only what is missing. This module knows nothing of HTTP or of what a job does.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from kit.core.logging import get_logger
from kit.rag_service.errors import IngestBusyError, public_reason

log = get_logger("rag")

MAX_FINISHED = 100  # finished jobs kept; the oldest is forgotten first
Run = Callable[[list[Path], bool], dict[str, Any]]  # (paths, prune) -> the run's report


@dataclass(frozen=True)
class IngestJob:
    id: str
    paths: list[str]  # as the caller named them, relative to KIT_DOCS_ROOT
    prune: bool
    status: Literal["queued", "running", "done", "failed"] = "queued"
    report: dict[str, Any] | None = None
    error: str | None = None
    finished_at: float | None = None  # the clock's time; None while queued or running


class IngestJobs:
    """The job table and its one worker. `run` does the work (the service's ingestion)."""

    def __init__(
        self,
        run: Run,
        *,
        ttl_s: float,
        max_finished: int = MAX_FINISHED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._ttl_s = ttl_s
        self._max_finished = max_finished
        self._clock = clock
        self._jobs: dict[str, IngestJob] = {}  # insertion order: oldest first
        self._active: str | None = None  # the one job queued or running
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, list[Path]] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None  # started by the first job, not before

    def submit(self, paths: list[Path], shown: list[str], prune: bool, by: str) -> IngestJob:
        """Queue a job on `paths` (already checked by the caller); `shown` is how to report
        them. Raises IngestBusyError while another job is queued or running."""
        with self._lock:
            self._expire()
            if self._active is not None:
                raise IngestBusyError(self._active)
            job = IngestJob(id=uuid.uuid4().hex, paths=shown, prune=prune)
            self._jobs[job.id] = job
            self._active = job.id
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, daemon=True, name="ingest")
                self._worker.start()
        log.info("ingest_job_queued", job=job.id, key=by, paths=shown, prune=prune)
        self._queue.put((job.id, paths))
        return job

    def get(self, job_id: str) -> IngestJob | None:
        """The job as it is now (frozen: the worker replaces it as it progresses), or None when
        it never existed or has expired."""
        with self._lock:
            self._expire()
            return self._jobs.get(job_id)

    def close(self) -> None:
        """Stop the worker after the job it is running, if any (the service is shutting down);
        it is a daemon thread, so a long job does not hold up the process's exit."""
        self._queue.put(None)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job_id, paths = item
            job = self._update(job_id, status="running")
            try:
                report = self._run(paths, job.prune)
            except Exception as exc:  # reported through the job's status, not raised
                log.exception("ingest_job_failed", job=job_id)
                error = "Ingestion failed. " + public_reason(exc, f"job {job_id}")
                self._update(job_id, status="failed", error=error, finished=True)
            else:
                log.info("ingest_job_done", job=job_id, documents=report.get("documents"))
                self._update(job_id, status="done", report=report, finished=True)

    def _update(self, job_id: str, *, finished: bool = False, **changes: Any) -> IngestJob:
        with self._lock:
            if finished:
                changes["finished_at"] = self._clock()
                self._active = None
            job = self._jobs[job_id] = replace(self._jobs[job_id], **changes)
            return job

    def _expire(self) -> None:
        """Forget finished jobs older than the TTL, then all but the newest `max_finished`."""
        now = self._clock()
        for job in list(self._jobs.values()):
            if job.finished_at is not None and now - job.finished_at >= self._ttl_s:
                del self._jobs[job.id]
        finished = [job.id for job in self._jobs.values() if job.finished_at is not None]
        for job_id in finished[: max(0, len(finished) - self._max_finished)]:
            del self._jobs[job_id]
