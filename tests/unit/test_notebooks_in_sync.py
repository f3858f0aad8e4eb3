"""The course's notebooks: each `.py` source (the one reviewed as code) and its `.ipynb` twin
(the one Jupyter opens) hold the same cells, and every notebook keeps the course's shape.

The `.py` files are the source of truth; `jupytext --sync notebooks/NAME.py` rewrites the
`.ipynb` after an edit (notebooks/jupytext.toml pairs them). Executing them is the e2e tier's
job (tests/e2e/test_notebooks.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import require_module

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
# The curriculum: one notebook per practice area, in order (02 is prompt engineering).
REQUIRED = {"01_model_integration", "03_rag", "04_finetuning", "05_deployment_monitoring"}


def cells(notebook: Any) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_every_practice_area_has_a_notebook_in_both_formats() -> None:
    sources = {path.stem for path in SOURCES}
    twins = {path.stem for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}

    assert sources >= REQUIRED
    assert twins == sources, (
        f"unpaired notebooks: {sorted(sources ^ twins)}; "
        "create the missing twin with `jupytext --sync notebooks/NAME.py`"
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_ipynb_holds_the_same_cells_as_its_source(source: Path) -> None:
    jupytext = require_module("jupytext")
    twin = source.with_suffix(".ipynb")
    assert twin.exists(), f"run `jupytext --sync {source.relative_to(NOTEBOOKS.parent)}`"

    assert cells(jupytext.read(twin)) == cells(jupytext.read(source)), (
        f"{twin.name} differs from {source.name}, which is the source of truth: "
        f"run `jupytext --sync {source.relative_to(NOTEBOOKS.parent)}` (after editing the .py) "
        "or save it from Jupyter with jupytext installed"
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_notebook_opens_with_its_title_and_ends_with_exercises(source: Path) -> None:
    notebook = require_module("jupytext").read(source)
    first, last = notebook.cells[0], notebook.cells[-1]

    assert first.cell_type == "markdown" and first.source.startswith("# "), "a title first"
    assert last.cell_type == "markdown" and "## Exercises" in last.source
    exercises = re.findall(r"^\d+\. ", last.source.split("## Exercises", 1)[1], re.MULTILINE)
    assert 4 <= len(exercises) <= 6, f"{len(exercises)} exercises; the course gives 4 to 6"
