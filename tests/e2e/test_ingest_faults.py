"""`kit ingest` with QDRANT_URL where no Qdrant answers: one clear error and exit code 1; and a
path outside KIT_DOCS_ROOT: refused before anything loads, with the setting to change.

The outage in the middle of a run, and the resume after it, are in
tests/integration/test_rag_faults.py; this proves what a user sees at the command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.servers import free_port

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]


def test_kit_ingest_exits_1_naming_the_unreachable_qdrant_and_the_fix(
    tmp_path: Path, kit_env: dict[str, str]
) -> None:
    (tmp_path / "page.md").write_text("# Cookies\n\nRead a cookie with the Cookie parameter.")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = kit_env | {"QDRANT_URL": url, "KIT_QDRANT_TIMEOUT_S": "2", "COLUMNS": "500"}
    env["KIT_DOCS_ROOT"] = str(tmp_path)  # the page is a document of this docs root

    result = subprocess.run(
        [KIT, "ingest", str(tmp_path / "page.md")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )

    error = " ".join(result.stderr.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: Qdrant is unreachable at {url}" in error
    assert "QDRANT_URL" in error and "kit doctor" in error
    assert "Traceback" not in result.stderr
    assert not (Path(kit_env["KIT_DATA_DIR"]) / "reports").exists()  # no report of a failed run


def test_kit_ingest_of_a_folder_outside_the_docs_root_exits_2_naming_the_setting(
    tmp_path: Path, kit_env: dict[str, str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "page.md").write_text("# Cookies\n\nRead a cookie with the Cookie parameter.")
    env = kit_env | {"KIT_DOCS_ROOT": str(tmp_path / "docs"), "COLUMNS": "500"}

    result = subprocess.run(
        [KIT, "ingest", str(elsewhere)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )

    error = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{elsewhere} is outside KIT_DOCS_ROOT" in error and "set KIT_DOCS_ROOT" in error
    assert "Traceback" not in result.stderr
    assert not (Path(kit_env["KIT_DATA_DIR"]) / "qdrant").exists()  # nothing was created
