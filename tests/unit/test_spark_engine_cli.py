"""`kit ingest --engine spark` refuses, with the fix, on a machine without Java; `kit doctor` says
whether Java is there (only the spark engine needs it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kit.cli.app import app
from kit.cli.doctor import Status, check_java

runner = CliRunner()


@pytest.fixture
def no_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH with no `java` on it: what a fresh machine without a JRE looks like."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("JAVA_HOME", raising=False)


def test_the_spark_engine_without_java_exits_with_how_to_install_it(
    no_java: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/page.md").write_text("# Page\n\nText.")
    monkeypatch.setenv("KIT_DOCS_ROOT", str(tmp_path / "docs"))
    monkeypatch.setenv("KIT_DATA_DIR", str(tmp_path / "data"))

    result = runner.invoke(app, ["ingest", str(tmp_path / "docs"), "--engine", "spark"])

    assert result.exit_code != 0
    assert "apt-get install default-jre-headless" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "data/qdrant").exists()  # refused before anything was opened


def test_an_unknown_engine_is_refused() -> None:
    result = runner.invoke(app, ["ingest", ".", "--engine", "dask"])

    assert result.exit_code == 2
    assert "local" in result.output and "spark" in result.output


def test_doctor_says_java_is_missing_as_information_not_failure(no_java: None) -> None:
    [check] = check_java()

    assert check.status is Status.INFO
    assert "default-jre-headless" in check.fix


@pytest.mark.skipif(shutil.which("java") is None, reason="no Java on this machine")
def test_doctor_gives_the_java_version_when_there_is_one() -> None:
    [check] = check_java()

    assert check.status is Status.OK
    assert "version" in check.detail
