"""The /ingest job table: one job at a time on one worker thread, finished jobs forgotten after the
TTL or beyond the bound, and failures reported without the exception's text. The work is a
function the test controls (an Event holds it "running"); the clock is a number the test moves."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kit.rag.store import StoreUnavailableError
from kit.rag_service.errors import IngestBusyError
from kit.rag_service.jobs import IngestJob, IngestJobs


class Work:
    """The job's work: waits until released, then returns a report or raises `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.calls: list[tuple[list[Path], bool]] = []
        self.threads: set[str] = set()
        self.error = error

    def __call__(self, paths: list[Path], prune: bool) -> dict[str, Any]:
        self.calls.append((paths, prune))
        self.threads.add(threading.current_thread().name)
        assert self.release.wait(10), "the test never released the job"
        if self.error is not None:
            raise self.error
        return {"documents": {"added": len(paths)}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def finished(jobs: IngestJobs, job_id: str) -> IngestJob:
    deadline = time.monotonic() + 10
    while (job := jobs.get(job_id)) is not None and job.finished_at is None:
        assert time.monotonic() < deadline, job
        time.sleep(0.01)
    assert job is not None
    return job


def submit(jobs: IngestJobs, name: str = "docs") -> IngestJob:
    return jobs.submit([Path("/srv/data") / name], [name], prune=False, by="ops")


def test_a_second_job_while_one_runs_is_refused_naming_the_running_one() -> None:
    work = Work()
    jobs = IngestJobs(work, ttl_s=60)
    first = submit(jobs)

    with pytest.raises(IngestBusyError) as busy:
        submit(jobs, "other")
    work.release.set()
    done = finished(jobs, first.id)
    second = submit(jobs, "other")
    finished(jobs, second.id)

    assert busy.value.job_id == first.id and first.id in str(busy.value)
    assert done.status == "done" and done.report == {"documents": {"added": 1}}
    assert done.paths == ["docs"]  # as the caller named them, never the resolved path
    assert work.threads == {"ingest"}  # one worker ran both jobs: no thread per request
    jobs.close()


def test_a_finished_job_expires_after_the_ttl() -> None:
    work, clock = Work(), Clock()
    jobs = IngestJobs(work, ttl_s=60, clock=clock)
    work.release.set()
    job = finished(jobs, submit(jobs).id)

    clock.now += 59
    still_there = jobs.get(job.id)
    clock.now += 1

    assert still_there is not None and still_there.status == "done"
    assert jobs.get(job.id) is None
    jobs.close()


def test_a_running_job_never_expires() -> None:
    work, clock = Work(), Clock()
    jobs = IngestJobs(work, ttl_s=60, clock=clock)
    job = submit(jobs)

    clock.now += 10_000
    running = jobs.get(job.id)
    work.release.set()

    assert running is not None and running.status in ("queued", "running")
    assert finished(jobs, job.id).status == "done"
    jobs.close()


def test_the_table_keeps_only_the_newest_finished_jobs() -> None:
    work = Work()
    work.release.set()
    jobs = IngestJobs(work, ttl_s=3600, max_finished=3)

    ids = [finished(jobs, submit(jobs, f"f{n}").id).id for n in range(5)]

    assert [jobs.get(job_id) is not None for job_id in ids] == [False, False, True, True, True]
    jobs.close()


def test_a_failed_job_says_what_failed_but_not_the_exceptions_text() -> None:
    work = Work(StoreUnavailableError("Qdrant is unreachable at http://qdrant.internal:6333"))
    work.release.set()
    jobs = IngestJobs(work, ttl_s=60)

    job = finished(jobs, submit(jobs).id)

    assert job.status == "failed" and job.error is not None
    assert "store" in job.error and "unreachable" in job.error and job.id in job.error
    assert "qdrant.internal" not in job.error
    jobs.close()


def test_no_thread_starts_until_a_job_is_submitted() -> None:
    before = {thread.name for thread in threading.enumerate()}

    jobs = IngestJobs(Work(), ttl_s=60)

    assert "ingest" not in {thread.name for thread in threading.enumerate()} - before
    jobs.close()
