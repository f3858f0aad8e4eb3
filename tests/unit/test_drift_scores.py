"""Drift monitoring without models: the scores on known and seeded data, the query log's format
and concurrency, the windows picked from it, the exported gauges and the report's escaping."""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kit.core.errors import ConfigError
from kit.drift import collect, report
from kit.drift.corpus import Nearest
from kit.drift.export import DriftMetrics, write_textfile
from kit.drift.run import DriftResult
from kit.drift.score import (
    Thresholds,
    length_psi,
    mmd_rbf,
    proportions,
    psi,
    rate,
    reference_bins,
    score_windows,
    share_below,
)
from kit.drift.store import QueryLog, QueryRecord, read_records

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def unit_rows(rng: np.random.Generator, n: int, centre: np.ndarray, spread: float) -> np.ndarray:
    """n unit vectors scattered around `centre`: stand-ins for sentence embeddings."""
    rows = centre + spread * rng.standard_normal((n, len(centre)))
    normalised: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


# --- PSI ---------------------------------------------------------------------------------------


def test_psi_matches_the_formula_on_known_proportions() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.1733 + 0.1014
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.1, 0.2, 0.7], [0.1, 0.2, 0.7]) == 0.0
    # PSI is symmetric: swapping the windows gives the same number
    assert psi([0.2, 0.8], [0.6, 0.4]) == pytest.approx(psi([0.6, 0.4], [0.2, 0.8]))


def test_bins_come_from_the_reference_and_empty_bins_are_smoothed() -> None:
    edges = reference_bins(list(range(1, 11)), bins=2)
    shares = proportions([1, 2, 3], edges, smoothing=0.5)

    assert edges.tolist() == [5.5]
    # counts (3, 0) + 0.5 each, over 3 + 2 * 0.5: an empty bin is small, not zero
    assert shares.tolist() == pytest.approx([3.5 / 4, 0.5 / 4])
    assert reference_bins([7, 7, 7, 7], bins=5).tolist() == [7.0]  # repeated edges merged


def test_identical_lengths_score_zero_and_a_shift_scores_far_above_the_threshold() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 25, size=300)

    assert length_psi(lengths, lengths) == pytest.approx(0.0, abs=1e-12)
    assert length_psi(lengths, lengths + 10) > 1.0 > Thresholds().psi
    same_source = rng.integers(8, 25, size=300)
    assert length_psi(lengths, same_source) < Thresholds().psi


# --- MMD ---------------------------------------------------------------------------------------


def naive_unbiased_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d / (2 * sigma**2))

    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * k(x, y).mean()
    )


def test_mmd_equals_the_textbook_estimate() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 5)), rng.standard_normal((15, 5)) + 0.5

    result = mmd_rbf(x, y, bandwidth=1.7, permutations=20)

    assert result.mmd2 == pytest.approx(naive_unbiased_mmd2(x, y, 1.7))
    assert result.bandwidth == 1.7


def test_windows_from_one_distribution_score_near_zero_with_a_large_p_value() -> None:
    rng = np.random.default_rng(2)
    centre = rng.standard_normal(32)
    x, y = unit_rows(rng, 120, centre, 0.3), unit_rows(rng, 100, centre, 0.3)

    result = mmd_rbf(x, y, permutations=300, seed=0)
    itself = mmd_rbf(x, x, permutations=50)

    assert abs(result.mmd2) < 0.005 < Thresholds().mmd
    assert result.p_value > 0.05
    # A window against itself: the within-window means leave the self-pairs out and the cross
    # mean does not, so the estimate is 2(S - n^2)/(n^2 (n - 1)) <= 0, a hair below zero.
    assert -0.01 < itself.mmd2 <= 0 and itself.p_value == 1.0


def test_a_shifted_window_scores_high_with_the_smallest_p_value() -> None:
    rng = np.random.default_rng(3)
    centre, elsewhere = rng.standard_normal(32), rng.standard_normal(32)
    x, y = unit_rows(rng, 120, centre, 0.3), unit_rows(rng, 100, elsewhere, 0.3)

    result = mmd_rbf(x, y, permutations=200, seed=0)

    assert result.mmd2 > 10 * Thresholds().mmd
    assert result.p_value == pytest.approx(1 / 201)  # no shuffle comes close


def test_the_p_value_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(4)
    centre = rng.standard_normal(8)
    x, y = unit_rows(rng, 40, centre, 0.5), unit_rows(rng, 40, centre + 0.3, 0.5)

    first, again = mmd_rbf(x, y, seed=7), mmd_rbf(x, y, seed=7)

    assert first == again
    assert 0 < first.p_value <= 1


def test_large_windows_are_subsampled_to_bound_memory() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((300, 4)), rng.standard_normal((300, 4))

    result = mmd_rbf(x, y, max_samples=50, permutations=20)

    assert abs(result.mmd2) < 0.1 and result.permutations == 20


def test_bad_windows_are_refused_with_a_clear_message() -> None:
    rows = np.ones((3, 4))

    with pytest.raises(ValueError, match="current window needs a non-empty"):
        mmd_rbf(rows, np.empty((0, 4)))
    with pytest.raises(ValueError, match="at least 2 vectors per window"):
        mmd_rbf(rows, np.ones((1, 4)))
    with pytest.raises(ValueError, match="differ in size: 4 and 3"):
        mmd_rbf(rows, np.ones((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        mmd_rbf(rows, np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="window is empty"):
        length_psi([], [3, 4])
    with pytest.raises(ValueError, match="positive proportions"):
        psi([0.5, 0.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="current window is empty"):
        score_windows(
            reference_vectors=rows,
            current_vectors=np.empty((0, 4)),
            reference_texts=["a", "b", "c"],
            current_texts=[],
            reference_similarity=[0.5] * 3,
            current_similarity=[],
            current_refused=None,
        )


def test_the_cli_defaults_are_the_measured_thresholds() -> None:
    import inspect

    from kit.cli.drift import drift

    defaults = {name: p.default for name, p in inspect.signature(drift).parameters.items()}
    t = Thresholds()

    assert (defaults["max_mmd"], defaults["max_psi"]) == (t.mmd, t.psi)
    assert (defaults["max_far_share"], defaults["max_refusal_rate"]) == (
        t.far_share,
        t.refusal_rate,
    )


# --- Shares and all checks at once -------------------------------------------------------------


def test_shares_and_rates() -> None:
    assert share_below([0.2, 0.39, 0.4, 0.8], 0.4) == 0.5  # strictly below the bar
    assert rate([True, False, False, False]) == 0.25
    with pytest.raises(ValueError, match="undefined"):
        rate([])


def test_score_windows_flags_only_the_checks_over_their_threshold() -> None:
    rng = np.random.default_rng(6)
    centre = rng.standard_normal(16)
    ref = unit_rows(rng, 60, centre, 0.3)
    cur = unit_rows(rng, 60, centre, 0.3)
    texts = ["how do I declare a path parameter in my app"] * 60

    scores = score_windows(
        reference_vectors=ref,
        current_vectors=cur,
        reference_texts=texts,
        current_texts=texts,
        reference_similarity=[0.6] * 60,
        current_similarity=[0.6] * 30 + [0.2] * 30,  # half the questions far from the corpus
        current_refused=[True] * 20 + [False] * 40,
        permutations=50,
    )
    checks = scores.by_name()

    assert list(checks) == [
        "embedding_mmd",
        "length_psi",
        "far_from_corpus_share",
        "refusal_rate",
    ]
    assert [c.name for c in scores.drifted] == ["far_from_corpus_share", "refusal_rate"]
    assert checks["far_from_corpus_share"].score == 0.5
    assert checks["refusal_rate"].score == pytest.approx(1 / 3)
    assert scores.details["reference_far_from_corpus_share"] == 0.0


# --- The query log -----------------------------------------------------------------------------


def test_a_record_round_trips_through_one_json_line() -> None:
    record = QueryRecord(NOW, 'Ünïcode "quotes"\nand a newline', 0.51234, False, "docs", "m")

    line = record.to_json()

    assert "\n" not in line
    assert QueryRecord.from_json(line) == QueryRecord(
        NOW, 'Ünïcode "quotes"\nand a newline', 0.5123, False, "docs", "m"
    )
    naive = QueryRecord.from_json('{"ts": "2026-11-29T12:00:00", "question": "q"}')
    assert naive.ts == NOW and naive.refused is None  # no offset: read as UTC


def test_concurrent_appends_give_one_whole_line_each_in_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "queries.jsonl"
    log = QueryLog(path)
    long_question = "why " * 2000  # 8 kB: more than one write buffer

    def worker(n: int) -> None:
        for i in range(50):
            log.append(QueryRecord(NOW, f"{long_question}{n}-{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contents = read_records(path)

    assert contents.malformed == 0
    assert len(contents.records) == 400
    assert {r.question.split()[-1] for r in contents.records} == {
        f"{n}-{i}" for n in range(8) for i in range(50)
    }
    assert path.stat().st_mode & 0o777 == 0o600  # questions may hold personal data


def test_sampling_keeps_the_configured_share() -> None:
    draws = iter([0.05, 0.5, 0.09, 0.99])
    log = QueryLog(Path("unused.jsonl"), sample_rate=0.1, rng=lambda: next(draws))

    assert [log.sampled() for _ in range(4)] == [True, False, True, False]
    assert QueryLog(Path("unused.jsonl")).sampled()  # 1.0 keeps everything without a draw
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        QueryLog(Path("unused.jsonl"), sample_rate=1.5)


def test_a_torn_line_is_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    good = QueryRecord(NOW, "How do I add CORS?").to_json()
    path.write_text(f'{good}\n{{"ts": "2026-11-29T12:0\n\n{{"ts": "x", "question": "q"}}\n')

    contents = read_records(path)

    assert [r.question for r in contents.records] == ["How do I add CORS?"]
    assert contents.malformed == 2


# --- Windows -----------------------------------------------------------------------------------


def write_log(path: Path, ages_hours: list[float], collection: str = "docs") -> None:
    log = QueryLog(path)
    for n, age in enumerate(ages_hours):
        log.append(
            QueryRecord(NOW - timedelta(hours=age), f"question {n}", 0.5, n % 2 == 0, collection)
        )


def test_durations_and_spans_parse_or_say_how_to_write_them() -> None:
    assert collect.parse_duration("36h") == timedelta(hours=36)
    assert collect.parse_duration("2w") == timedelta(days=14)
    assert collect.parse_span("14d..7d") == (timedelta(days=14), timedelta(days=7))
    with pytest.raises(ConfigError, match=r"e\.g\. 7d"):
        collect.parse_duration("7 days")
    with pytest.raises(ConfigError, match="older"):
        collect.parse_span("1d..7d")


def test_the_current_window_is_the_recent_part_of_the_log(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    write_log(path, [200, 100, 30, 20, 10, 1])
    write_log(path, [2], collection="other")  # another collection's question: left out

    recent = collect.log_window(path, now=NOW, since=timedelta(days=2), collection="docs")
    last = collect.log_window(path, now=NOW, last=2, collection="docs")
    older = collect.log_window(
        path, now=NOW, since=timedelta(days=10), until=timedelta(days=3), name="reference"
    )

    assert recent.questions == ["question 2", "question 3", "question 4", "question 5"]
    assert recent.refused == [True, False, True, False]
    assert recent.start == NOW - timedelta(hours=30) and recent.end == NOW - timedelta(hours=1)
    assert last.questions == ["question 4", "question 5"]
    assert older.questions == ["question 0", "question 1"] and "10d..3d" in older.source


def test_missing_and_empty_logs_say_how_to_produce_one(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"

    with pytest.raises(collect.NotEnoughQuestions, match=r"RAG_QUERY_LOG.*kit serve rag"):
        collect.log_window(path, now=NOW, since=timedelta(days=1))
    path.write_text("")
    with pytest.raises(collect.NotEnoughQuestions, match="holds no questions"):
        collect.log_window(path, now=NOW, since=timedelta(days=1))
    write_log(path, [100, 90])
    with pytest.raises(collect.NotEnoughQuestions, match=r"Widen the window.*--last N"):
        collect.log_window(path, now=NOW, since=timedelta(days=1))
    small = collect.log_window(path, now=NOW, last=5)
    with pytest.raises(collect.NotEnoughQuestions, match=r"2 questions.*at least 30"):
        collect.require(small, 30)


def test_question_files_are_jsonl_or_plain_text(tmp_path: Path) -> None:
    (tmp_path / "set.jsonl").write_text('{"id": 1, "question": "a?"}\n\n{"question": "b?"}\n')
    (tmp_path / "set.txt").write_text("first?\n  second?  \n\n")
    (tmp_path / "bad.jsonl").write_text('{"text": "no question field"}\n')

    assert collect.question_file(tmp_path / "set.jsonl").questions == ["a?", "b?"]
    assert collect.question_file(tmp_path / "set.txt").questions == ["first?", "second?"]
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: no question field"):
        collect.question_file(tmp_path / "bad.jsonl")
    with pytest.raises(ConfigError, match="--reference PATH"):
        collect.question_file(tmp_path / "missing.jsonl")


# --- Export and report -------------------------------------------------------------------------


def fake_result(questions: list[str]) -> DriftResult:
    rng = np.random.default_rng(8)
    vectors = unit_rows(rng, len(questions), rng.standard_normal(8), 0.5).astype(np.float32)
    nearest = Nearest(np.linspace(0.1, 0.7, len(questions)), ["page.md"] * len(questions))
    window = collect.Window("current", "test", questions, refused=[False] * len(questions))
    scores = score_windows(
        reference_vectors=vectors,
        current_vectors=vectors,
        reference_texts=questions,
        current_texts=questions,
        reference_similarity=nearest.similarity,
        current_similarity=nearest.similarity,
        current_refused=window.refused,
        permutations=20,
    )
    reference = collect.Window("reference", "test", questions)
    return DriftResult(
        reference,
        window,
        vectors,
        vectors,
        nearest,
        nearest,
        scores,
        Thresholds(),
        "m",
        "docs",
        NOW,
    )


def test_the_gauges_hold_every_score_and_its_threshold(tmp_path: Path) -> None:
    result = fake_result([f"question number {n}" for n in range(10)])
    registry = CollectorRegistry()
    DriftMetrics(registry).record(result.scores, reference=10, current=10, seconds=1.5)

    write_textfile(tmp_path / "textfile" / "drift.prom", registry)
    text = (tmp_path / "textfile" / "drift.prom").read_text()
    samples = {
        (s.name, s.labels.get("check") or s.labels.get("window")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    by_name = result.scores.by_name()
    for name, check in by_name.items():
        assert samples[("drift_score", name)] == pytest.approx(check.score)
        assert samples[("drift_threshold", name)] == check.threshold
    assert samples[("drift_window_questions", "current")] == 10
    assert samples[("drift_run_duration_seconds", None)] == 1.5
    assert samples[("drift_last_run_timestamp_seconds", None)] > NOW.timestamp() - 86400 * 365


def test_the_report_escapes_questions_and_embeds_its_plots() -> None:
    result = fake_result(["<script>alert('x')</script> is this safe?"] + ["fine question"] * 9)

    page = report.render(result)

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count('src="data:image/png;base64,') == 3
    assert json.dumps(result.as_dict())  # the scores JSON is plain JSON
