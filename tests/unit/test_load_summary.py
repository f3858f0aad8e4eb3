"""The gate of `make load`: locust's CSV read right, failures and RSS growth judged right.

The CSV below is a real `gateway_stats.csv` from a 25 s run of tests/load/gateway_locustfile.py.
The locustfiles cannot be imported here (locust patches the standard library with gevent on
import), so the last tests ask the `locust` command to load them, as `make load` does.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.load.summary import (
    MIB,
    LocustTotals,
    RssBound,
    RssSeries,
    as_json,
    parse_duration,
    problems,
    read_locust_stats,
    report_lines,
)

GATEWAY_STATS = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,\
50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,"chat (repeated, temperature 0)",147,0,5,6.1262,2.2308,20.6955,282.88,6.1170,0.0,\
5,6,8,9,11,13,15,19,21,21,21
POST,chat (streamed),43,0,33,34.0044,25.7668,42.6933,1676.0,1.7893,0.0,\
33,35,38,39,41,42,43,43,43,43,43
POST,chat (unique),498,0,31,33.4383,23.6427,67.8717,284.0,20.7230,0.0,\
31,35,37,39,42,44,51,53,68,68,68
POST,embeddings,42,0,31,33.4741,26.1264,52.7896,299.09,1.7477,0.0,\
31,36,37,40,42,43,53,53,53,53,53
,Aggregated,730,0,30,27.9739,2.2308,67.8717,366.63,30.3771,0.0,\
30,33,36,37,41,43,50,52,68,68,68
"""
EMPTY_STATS = GATEWAY_STATS.splitlines()[0] + "\n"
LOCUSTFILES = Path(__file__).resolve().parents[1] / "load"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run_stats.csv"
    path.write_text(text)
    return path


def test_the_totals_row_and_the_count_of_each_request_name(tmp_path: Path) -> None:
    totals = read_locust_stats(write(tmp_path, GATEWAY_STATS))

    assert (totals.requests, totals.failures) == (730, 0)
    assert totals.rps == pytest.approx(30.3771)
    assert (totals.p50_ms, totals.p95_ms, totals.p99_ms) == (30.0, 43.0, 52.0)
    assert totals.max_ms == pytest.approx(67.8717)
    assert totals.by_name == {
        "chat (repeated, temperature 0)": 147,
        "chat (streamed)": 43,
        "chat (unique)": 498,
        "embeddings": 42,
    }


def test_a_run_without_a_totals_row_is_an_error_not_a_pass(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no 'Aggregated' row"):
        read_locust_stats(write(tmp_path, EMPTY_STATS))


def test_a_percentile_locust_could_not_compute_reads_as_nan(tmp_path: Path) -> None:
    # Locust writes N/A for the percentiles of a name without successful timings.
    text = GATEWAY_STATS.replace(
        ",30,33,36,37,41,43,50,52,68,68,68", ",30,33,36,37,41,43,50,N/A,68,68,68"
    )
    totals = read_locust_stats(write(tmp_path, text))

    assert math.isnan(totals.p99_ms) and totals.p95_ms == 43.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300", 300), ("300s", 300), ("5m", 300), ("1h30m", 5400), ("2m30s", 150)],
)
def test_durations_are_read_as_locust_reads_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "five minutes", "5 m", "-5s"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def series(baseline_mib: float, *samples_mib: float) -> RssSeries:
    return RssSeries(
        int(baseline_mib * MIB), [(5.0 * i, int(s * MIB)) for i, s in enumerate(samples_mib)]
    )


def test_rss_growth_is_end_minus_baseline_and_a_transient_peak_is_reported_not_judged() -> None:
    rss = series(140, 141, 170, 150)

    assert rss.growth == 10 * MIB and rss.peak == 170 * MIB
    assert RssBound(16).problem("gateway", rss) is None


def test_growth_over_the_bound_fails_the_run_and_says_by_how_much() -> None:
    totals = read_totals(failures=0)
    [problem] = problems("gateway", totals, series(140, 150, 160, 160.5), RssBound(16))

    assert "grew 20.5 MiB" in problem and "140.0 -> 160.5" in problem and "16 MiB" in problem


def test_any_failed_request_fails_the_run() -> None:
    totals = read_totals(failures=3)

    assert problems("rag /ask", totals, None, None) == ["rag /ask: 3 of 730 requests failed"]
    assert problems("gateway", read_totals(failures=0), series(140, 141), RssBound(16)) == []


def test_the_report_states_the_rate_held_and_the_figures_recorded() -> None:
    totals, rss = read_totals(failures=0), series(138.8, 139.0, 139.1)

    lines = report_lines("gateway", totals, rss, target_rps=30)
    slow = report_lines("gateway", totals, rss, target_rps=40)
    record = as_json(totals, rss)

    assert "30.4 req/s of 30 targeted (101%, held)" in lines[0]
    assert "NOT held" in slow[0]
    assert "start 138.8  end 139.1  peak 139.1  growth +0.3" in lines[-1]
    assert record["requests"] == 730
    assert record["rss_mib"]["growth"] == pytest.approx(0.3, abs=0.01)


def read_totals(failures: int) -> LocustTotals:
    return LocustTotals(730, failures, 30.377, 30, 43, 52, 67.87, {"chat (unique)": 730})


@pytest.mark.parametrize(
    ("locustfile", "user"),
    [("gateway_locustfile.py", "GatewayUser"), ("rag_locustfile.py", "AskUser")],
)
def test_locust_loads_each_scenario_and_finds_its_user(locustfile: str, user: str) -> None:
    # A subprocess of about a second and no server: the locustfiles cannot rot unseen.
    binary = Path(sys.executable).with_name("locust")  # a pinned dev dependency, like pytest
    assert binary.exists(), "locust is not installed; run `make setup` (it is in the dev extra)"
    listed = subprocess.run(
        [str(binary), "-f", str(LOCUSTFILES / locustfile), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert listed.returncode == 0, listed.stderr
    assert user in listed.stdout.split()
