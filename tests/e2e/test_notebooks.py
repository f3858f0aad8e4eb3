"""Every notebook of the course, executed start to finish as a learner runs it: offline, on the
shipped models, in a fresh kernel whose state goes to a temporary folder.

This is how the notebooks cannot rot: `make test` runs them (a cell that raises fails the test,
with the cell and its traceback), and each must print what its lesson is about (`PROOF`), not
merely finish. Their kernel gets a clean environment: KIT_DATA_DIR and KIT_CACHE_DIR in a
temporary folder, HOME too (so nothing lands in the user's home), and none of the developer's
KIT_*/server variables. The notebooks themselves must not write into the repository.

Why nbclient rather than `pytest --nbmake`: nbmake runs the kernel with the pytest process's own
environment, and collects notebooks outside `tests/`; this module gives each notebook its own
environment and keeps the tier rule (tests/conftest.py) intact. nbmake is built on the same
nbclient. Run one: `.venv/bin/pytest tests/e2e/test_notebooks.py -k 03`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import require_module

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 300  # the slowest cell (a fine-tune, a full ingest) takes about a minute
# Slow tier, run by `make test-all` only: runs every notebook, about five minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# What each notebook must have shown, found in its outputs: the lesson happened.
PROOF = {
    "01_model_integration": [
        "x-kit-deployment: local-smollm2",  # flaky-cloud fell back to the local model
        "x-kit-fallbacks:  1",
        "x-kit-cache=hit",  # the repeated request came from the cache
        'gateway_fallbacks_total{alias="flaky-cloud",from_deployment="dead-upstream"',
    ],
    "02_prompt_engineering": [
        "few-shot nearest k=3",  # the variant comparison ran and printed its table
        "attempt 3:",  # structured output retried with the validation error
        "Unknown tool 'search'",  # a ReAct step's mistake became an observation
        "answered by smollm2-135m-instruct",
    ],
    "03_rag": ["hit_rate_at_5", "mrr", "[1]", "refused: True"],
    "04_finetuning": ["logreg (frozen MiniLM)", "champion", "challenger", "intent-router"],
    "05_deployment_monitoring": ["rag_answers_total", "GatewayHighErrorRate", "embedding_mmd"],
}


def kernel_environment(tmp_path: Path, cache_dir: Path) -> dict[str, str]:
    """The kernel's environment: the developer's, less the kit's settings, state in tmp_path."""
    kit_prefixes = ("KIT_", "GATEWAY_", "RAG_", "QDRANT_", "REDIS_", "MLFLOW_TRACKING")
    env = {k: v for k, v in os.environ.items() if not k.startswith(kit_prefixes)}
    (tmp_path / "home").mkdir()
    env |= {
        "KIT_ENV": "test",
        "KIT_LOG_LEVEL": "WARNING",
        "KIT_DATA_DIR": str(tmp_path / "data"),
        "KIT_CACHE_DIR": str(cache_dir),
        "HOME": str(tmp_path / "home"),
        "MPLCONFIGDIR": str(tmp_path / "home" / ".matplotlib"),
        # The kit's venv first, as if activated: `!kit ...` in a cell finds this kit.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    return env


def outputs(notebook: Any) -> str:
    """Everything the notebook printed or displayed, as one string."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                parts.append(output["text"])
            parts.extend(str(value) for value in output.get("data", {}).values())
    return "\n".join(parts)


def repository_entries() -> set[str]:
    """What lies at the top of the repository and of notebooks/: a notebook that wrote state
    (an mlruns/, a Qdrant folder, a report) into the repository would add an entry here."""
    top = {path.name for path in REPO.iterdir()}
    return top | {f"notebooks/{path.name}" for path in (REPO / "notebooks").iterdir()}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_offline_from_top_to_bottom(
    path: Path, tmp_path: Path, shared_cache_dir: Path
) -> None:
    nbformat = require_module("nbformat")
    nbclient = require_module("nbclient")
    require_module("ipykernel")
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",  # ipykernel's kernel on this interpreter (the kit's venv)
        resources={"metadata": {"path": str(path.parent)}},  # cwd, as in Jupyter
        extra_arguments=["--InteractiveShell.colors=nocolor"],  # plain tracebacks in the report
    )
    before = repository_entries()
    started = time.monotonic()
    try:
        client.execute(env=kernel_environment(tmp_path, shared_cache_dir))
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed in a cell:\n{error}", pytrace=False)
    seconds = time.monotonic() - started

    printed = outputs(notebook)
    missing = [proof for proof in PROOF.get(path.stem, []) if proof not in printed]
    assert not missing, f"{path.name} ran but never showed {missing}"
    assert repository_entries() == before, "the notebook wrote into the repository"
    print(f"{path.name}: {seconds:.0f}s")
