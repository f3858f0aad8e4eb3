"""`start_notebook`: the one set-up call every course notebook makes.

It changes the process's working directory and environment, so each case runs it in a child
Python started from somewhere else, as a Jupyter kernel would be, and reads back what it did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kit.notebook import REPOSITORY_ROOT

PROBE = """
import json, os, shutil
from kit.notebook import start_notebook
first = start_notebook("07")
second = start_notebook("07")  # a re-run of the first cell changes nothing further
print(json.dumps({
    "cwd": os.getcwd(),
    "root": str(first.root),
    "data_dir": str(first.data_dir),
    "same_data_dir": first.data_dir == second.data_dir,
    "log_level": os.environ["KIT_LOG_LEVEL"],
    "path": os.environ["PATH"].split(os.pathsep),
    "kit": shutil.which("kit"),
    "text": str(first),
}))
"""


def run_probe(tmp_path: Path, **env: str) -> dict:
    bare_path = os.pathsep.join(
        part
        for part in os.environ["PATH"].split(os.pathsep)
        if part != str(Path(sys.executable).parent)  # as in a kernel never "activated"
    )
    child_env = {
        "PATH": bare_path,
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": str(REPOSITORY_ROOT),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,  # not the repository: Jupyter starts kernels in the notebook's folder
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_works_from_the_repository_root_with_state_in_a_fresh_folder(tmp_path: Path) -> None:
    seen = run_probe(tmp_path)

    assert Path(seen["cwd"]) == REPOSITORY_ROOT == Path(seen["root"])
    data_dir = Path(seen["data_dir"])
    assert data_dir.is_dir()
    assert data_dir.parent == tmp_path and data_dir.name.startswith("kit-notebook-07-")
    assert seen["same_data_dir"]
    assert seen["log_level"] == "WARNING"
    assert f"state:      {data_dir}" in seen["text"]


def test_finds_the_kit_command_beside_the_kernels_python(tmp_path: Path) -> None:
    seen = run_probe(tmp_path)

    bin_dir = str(Path(sys.executable).parent)
    assert seen["path"][0] == bin_dir
    assert seen["path"].count(bin_dir) == 1  # calling it twice does not grow PATH
    assert seen["kit"] == str(Path(bin_dir) / "kit")


def test_keeps_the_readers_own_state_folder_and_log_level(tmp_path: Path) -> None:
    mine = tmp_path / "my-state"
    seen = run_probe(tmp_path, KIT_DATA_DIR=str(mine), KIT_LOG_LEVEL="DEBUG")

    assert Path(seen["data_dir"]) == mine
    assert seen["log_level"] == "DEBUG"
    assert not any(tmp_path.glob("kit-notebook-*"))  # no temporary folder made for nothing
