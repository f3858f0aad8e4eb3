"""`kit drift` as a cron job runs it: the installed command in a subprocess, on a query log file,
against a collection that `kit ingest` built, with its exit codes, report and metrics file."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kit.drift.store import QueryLog, QueryRecord

REPO = Path(__file__).resolve().parents[2]
KIT = str(Path(sys.executable).with_name("kit"))
PAGES = ["tutorial/first-steps.md", "tutorial/path-params.md", "tutorial/query-params.md"]
pytestmark = pytest.mark.timeout(900)


def kit(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KIT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def words(text: str) -> str:
    """Output with line wrapping undone (rich wraps messages at the terminal width)."""
    return " ".join(text.split())


@pytest.fixture
def indexed(kit_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A small collection: three pages of the FastAPI tutorial (drift needs a corpus to measure
    distance to; its size does not matter to what the CLI does)."""
    docs = tmp_path / "docs"
    for page in PAGES:
        (docs / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "data/fastapi-docs/docs" / page, docs / page)
    env = kit_env | {"KIT_DOCS_ROOT": str(docs)}  # documents are ingested from below it
    result = kit("ingest", str(docs), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return env


def banking_log(path: Path, count: int) -> None:
    """`count` BANKING77 queries as the RAG service would have logged them over the last hours."""
    with (REPO / "data/banking77/test.csv").open() as rows:
        texts = [row["text"] for row in csv.DictReader(rows)][:count]
    log, now = QueryLog(path), datetime.now(UTC)
    for n, text in enumerate(texts):
        ts = now - timedelta(minutes=count - n)
        log.append(QueryRecord(ts, text, 0.2, True, "docs", "all-minilm-l6-v2"))


def test_kit_drift_reports_off_topic_traffic_and_fails_when_asked(
    indexed: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "queries.jsonl"
    banking_log(log, 200)
    metrics = tmp_path / "textfile" / "drift.prom"
    reports = tmp_path / "reports"

    result = kit(
        "drift",
        "--log",
        str(log),
        "--window",
        "1d",
        "--metrics-file",
        str(metrics),
        "--output",
        str(reports),
        "--fail-on-drift",
        env=indexed,
    )

    assert result.returncode == 3, result.stdout + result.stderr
    assert "drift: embedding_mmd, length_psi" in words(result.stderr)
    assert "200 current vs 181 reference questions" in result.stdout
    for check in ("embedding_mmd", "length_psi", "far_from_corpus_share", "refusal_rate"):
        assert check in result.stdout
    printed = next(line for line in result.stdout.splitlines() if line.startswith("report: "))
    report = Path(printed.removeprefix("report: ").strip())
    assert report.parent == reports and report.suffix == ".html"
    assert report.read_text().count("data:image/png;base64,") == 3
    assert report.with_suffix(".json").is_file()
    samples = {
        (s.name, s.labels.get("check", "")): s.value
        for family in text_string_to_metric_families(metrics.read_text())
        for s in family.samples
    }
    assert samples[("drift_score", "refusal_rate")] == 1.0
    assert samples[("drift_score", "embedding_mmd")] > samples[("drift_threshold", "embedding_mmd")]
    assert samples[("drift_window_questions", "")] in (181.0, 200.0)

    # Without --fail-on-drift the same finding is reported and the job succeeds.
    again = kit("drift", "--log", str(log), "--last", "50", "--output", str(reports), env=indexed)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "50 current vs 181 reference questions" in again.stdout


def test_kit_drift_says_how_to_get_a_log_and_rejects_bad_options(
    indexed: dict[str, str], tmp_path: Path
) -> None:
    missing = kit("drift", "--log", str(tmp_path / "none.jsonl"), env=indexed)
    short = tmp_path / "short.jsonl"
    banking_log(short, 5)
    too_few = kit("drift", "--log", str(short), env=indexed)
    bad_window = kit("drift", "--log", str(short), "--window", "7 days", env=indexed)

    assert missing.returncode == 1
    assert "No query log at" in words(missing.stderr)
    assert "kit serve rag" in words(missing.stderr)
    assert too_few.returncode == 1
    assert "has 5 questions" in words(too_few.stderr) and "--min-queries" in words(too_few.stderr)
    assert bad_window.returncode == 2 and "e.g. 7d" in words(bad_window.stderr)
    for result in (missing, too_few, bad_window):
        assert "Traceback" not in result.stdout + result.stderr
