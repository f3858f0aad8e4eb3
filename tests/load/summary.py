"""The figures of a load run and its pass/fail gate: locust's CSV totals, servers' RSS samples.

Pure functions on files and numbers: no processes, sockets or locust imports, so
`tests/unit/test_load_summary.py` checks the gate on sample data. `tests/load/run.py` drives the
servers and locust, and calls these to judge what it measured.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
AGGREGATED = "Aggregated"  # the name of the totals row in locust's `*_stats.csv`
# A shortfall below this share of the target rate is reported: the machine, not the kit, may be
# the limit (locust and the servers share the cores), so it is a warning, not a failure.
RATE_HELD = 0.95


@dataclass(frozen=True)
class LocustTotals:
    """One locust run, from its `--csv PREFIX` output (`PREFIX_stats.csv`); times in ms."""

    requests: int
    failures: int
    rps: float  # requests over the whole run time, as locust counts them
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    by_name: dict[str, int] = field(default_factory=dict)  # requests per request name


def read_locust_stats(path: Path) -> LocustTotals:
    """The totals row of a locust `*_stats.csv`, with the request count of every other row."""
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    totals = next((row for row in rows if row["Name"] == AGGREGATED), None)
    if totals is None:
        raise ValueError(f"{path}: no {AGGREGATED!r} row; did locust run any request?")
    return LocustTotals(
        requests=int(totals["Request Count"]),
        failures=int(totals["Failure Count"]),
        rps=float(totals["Requests/s"]),
        p50_ms=_ms(totals["50%"]),
        p95_ms=_ms(totals["95%"]),
        p99_ms=_ms(totals["99%"]),
        max_ms=_ms(totals["Max Response Time"]),
        by_name={row["Name"]: int(row["Request Count"]) for row in rows if row is not totals},
    )


def _ms(value: str) -> float:
    # Locust writes "N/A" for a percentile of a run without requests.
    return float("nan") if value in ("", "N/A") else float(value)


def parse_duration(text: str) -> int:
    """Seconds in a locust-style duration: "300", "300s", "5m", "1h30m" -> 300, 300, 300, 5400."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?", text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"not a duration: {text!r} (examples: 90, 90s, 5m, 1h30m)")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise ValueError(f"a duration must be positive: {text!r}")
    return total


@dataclass(frozen=True)
class RssSeries:
    """A server's resident memory: a baseline taken after warm-up, then samples to the end.

    `samples` are (seconds since the measured run started, bytes); the last one is the end.
    """

    baseline: int
    samples: list[tuple[float, int]]

    @property
    def end(self) -> int:
        return self.samples[-1][1] if self.samples else self.baseline

    @property
    def peak(self) -> int:
        return max([self.baseline, *(rss for _, rss in self.samples)])

    @property
    def growth(self) -> int:
        """End minus baseline, in bytes: what the run left behind, not a transient peak."""
        return self.end - self.baseline


@dataclass(frozen=True)
class RssBound:
    """The most a server's RSS may grow from its post-warm-up baseline to the end of a run."""

    max_growth_mib: float

    def problem(self, name: str, rss: RssSeries) -> str | None:
        growth_mib = rss.growth / MIB
        if growth_mib <= self.max_growth_mib:
            return None
        return (
            f"{name} RSS grew {growth_mib:.1f} MiB ({_mib(rss.baseline)} -> {_mib(rss.end)} MiB), "
            f"over the bound of {self.max_growth_mib:g} MiB: a leak, or state without a bound"
        )


def problems(
    name: str, totals: LocustTotals, rss: RssSeries | None, bound: RssBound | None
) -> list[str]:
    """Why a run fails its gate (empty: it passes): any failed request, or memory growth."""
    found = []
    if totals.requests == 0:
        found.append(f"{name}: no request was made")
    if totals.failures:
        found.append(f"{name}: {totals.failures} of {totals.requests} requests failed")
    if rss is not None and bound is not None:
        problem = bound.problem(name, rss)
        if problem:
            found.append(problem)
    return found


def report_lines(
    name: str,
    totals: LocustTotals,
    rss: RssSeries | None,
    target_rps: float | None = None,
    users: int | None = None,
) -> list[str]:
    """The human summary of one run, a few aligned lines."""
    rate = f"{totals.rps:.1f} req/s"
    if target_rps:
        held = totals.rps / target_rps
        verdict = "held" if held >= RATE_HELD else "NOT held: the machine may be the limit"
        rate += f" of {target_rps:g} targeted ({held:.0%}, {verdict})"
    if users is not None:
        rate += f", {users} concurrent users"
    lines = [
        f"{name}: {totals.requests:,} requests, {totals.failures} failed, {rate}",
        f"  latency ms  p50 {totals.p50_ms:g}  p95 {totals.p95_ms:g}  p99 {totals.p99_ms:g}"
        f"  max {totals.max_ms:g}",
        "  requests    " + ", ".join(f"{n} {c:,}" for n, c in sorted(totals.by_name.items())),
    ]
    if rss is not None:
        growth = rss.growth
        lines.append(
            f"  RSS MiB     start {_mib(rss.baseline)}  end {_mib(rss.end)}  peak {_mib(rss.peak)}"
            f"  growth {growth / MIB:+.1f} ({growth / rss.baseline:+.1%})"
        )
    return lines


def as_json(totals: LocustTotals, rss: RssSeries | None) -> dict[str, Any]:
    """One run for the `.bench/load-*.json` record, RSS in MiB."""
    record: dict[str, Any] = asdict(totals)
    if rss is not None:
        record["rss_mib"] = {
            "start": rss.baseline / MIB,
            "end": rss.end / MIB,
            "peak": rss.peak / MIB,
            "growth": rss.growth / MIB,
            "samples": [[round(t, 1), round(b / MIB, 1)] for t, b in rss.samples],
        }
    return record


def _mib(size: int) -> str:
    return f"{size / MIB:.1f}"
