"""The set-up every course notebook shares, as one call: `start_notebook("01")`.

A notebook should read as the lesson, not as plumbing. Each one begins with the same steps, so
they live here (and are tested here) rather than copied into five first cells:

- work from the repository root, so paths read exactly as in the README and `docs/course.md`;
- keep the notebook's state (Qdrant's files, the MLflow store, caches) in a folder of its own:
  `KIT_DATA_DIR` when you set it, otherwise a fresh temporary folder, so running a notebook never
  touches the state of `make demo` or of another notebook;
- find the `kit` command beside this kernel's Python, so `!kit ...` cells work in a kernel whose
  virtual environment was never "activated";
- keep the output readable: the kit's log lines at `KIT_LOG_LEVEL` (WARNING unless set), plain
  text from `!kit ...` (no progress animations), no progress bars from MLflow or tqdm.

Environment variables are set with `setdefault` where a reader may reasonably choose otherwise
(`KIT_DATA_DIR`, `KIT_LOG_LEVEL`), and unconditionally where only one value works in a notebook.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from kit.core.logging import configure_logging
from kit.core.settings import KitSettings, load_settings

# src/kit/notebook.py -> the repository root, wherever the kernel was started from.
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class NotebookSession:
    """Where a notebook runs (`root`) and where it keeps its state (`data_dir`)."""

    root: Path
    data_dir: Path

    def __str__(self) -> str:
        return f"repository: {self.root}\nstate:      {self.data_dir}"


def start_notebook(name: str, *, quiet_level: str = "WARNING") -> NotebookSession:
    """Prepare this process for notebook `name` ("01", "02", ...) and say where things are.

    Call it once, in the first code cell. It changes the working directory and the environment
    of the kernel's process (which the `!kit ...` cells inherit), so it belongs in notebooks and
    scripts, never in library code.
    """
    os.chdir(REPOSITORY_ROOT)
    if not os.environ.get("KIT_DATA_DIR"):
        os.environ["KIT_DATA_DIR"] = tempfile.mkdtemp(prefix=f"kit-notebook-{name}-")
    data_dir = Path(os.environ["KIT_DATA_DIR"])
    os.environ.setdefault("KIT_LOG_LEVEL", quiet_level)  # the services log JSON lines

    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])

    os.environ["TERM"] = "dumb"  # rich (in `kit`) prints plain lines, not live animations
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm: no widgets needed

    configure_logging(load_settings(KitSettings))
    return NotebookSession(root=REPOSITORY_ROOT, data_dir=data_dir)
