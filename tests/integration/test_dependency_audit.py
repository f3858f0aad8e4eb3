"""`make audit` asks about every pinned package and fails on a known vulnerability.

The real pip-audit runs the real Makefile target, against a fake OSV query API on 127.0.0.1 that
knows one advisory for a version this project pins. OSV itself is not reachable from the machines
the kit is built on; GitHub's CI runs the same target against it (.github/workflows/ci.yml).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ADVISORY = "GHSA-kit0-test-0001"


def pins() -> dict[str, str]:
    """constraints.txt as {canonical name: version}."""
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pairs = (line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pairs}


class FakeOsv(ThreadingHTTPServer):
    """OSV's POST /v1/query: `{"package": {"name", "ecosystem"}, "version"}` -> `{"vulns": [...]}`
    (or `{}` when there are none), with one advisory for `vulnerable` = (name, version)."""

    def __init__(self, vulnerable: tuple[str, str]) -> None:
        self.vulnerable = vulnerable
        self.queries: list[tuple[str, str]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/query"

    def answer(self, name: str, version: str) -> dict[str, Any]:
        self.queries.append((name, version))
        if (name, version) != self.vulnerable:
            return {}
        affected = {
            "package": {"name": name, "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99.0"}]}],
        }
        vuln = {"id": ADVISORY, "summary": "A test advisory", "affected": [affected]}
        return {"vulns": [vuln]}


class _Handler(BaseHTTPRequestHandler):
    server: FakeOsv

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["content-length"])))
        assert query["package"]["ecosystem"] == "PyPI"
        body = json.dumps(self.server.answer(query["package"]["name"], query["version"])).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass


@pytest.fixture
def osv() -> Iterator[FakeOsv]:
    name, version = "requests", pins()["requests"]
    server = FakeOsv((name, version))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def make_audit(osv: FakeOsv, *variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "audit", f"AUDIT_OSV_URL={osv.url}", *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_known_vulnerability_in_a_pin_fails_the_audit_naming_it(osv: FakeOsv) -> None:
    result = make_audit(osv)

    assert result.returncode != 0, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if ADVISORY in line]
    assert line.split()[:2] == ["requests", pins()["requests"]]
    assert "99.0" in line  # the version that fixes it
    assert {name for name, _ in osv.queries} == set(pins())  # every pin was asked about
    assert set(osv.queries) == set(pins().items())


def test_an_accepted_advisory_lets_the_audit_pass(osv: FakeOsv) -> None:
    result = make_audit(osv, f"AUDIT_IGNORE={ADVISORY}")

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(osv.queries) == len(pins())
