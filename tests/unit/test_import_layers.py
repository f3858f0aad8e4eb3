"""The package's layers hold, and the check really catches an import that breaks them.

`make lint` runs import-linter with the contracts in pyproject.toml. Here it runs on the real
package, then on copies of it with one deliberate violation each: an import upward (the kernel
importing a service), one service importing the other, and a new subpackage nobody placed in a
layer. Each copy must fail, naming what broke; otherwise the contracts would pass whatever the
code did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """import-linter with the repository's contracts, on the `kit` package found in `src`."""
    env = os.environ | {"PYTHONPATH": str(src)}  # ahead of the installed (editable) package
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=src.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of src/ to break."""
    shutil.copytree(
        REPO / "src" / "kit", tmp_path / "src" / "kit", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path / "src"


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(REPO / "src")

    assert result.returncode == 0, result.stdout
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_the_kernel_importing_a_service_breaks_two_contracts(copy: Path) -> None:
    with (copy / "kit" / "core" / "errors.py").open("a") as module:
        module.write("\nimport kit.gateway.app  # a deliberate violation\n")

    result = lint_imports(copy)

    assert result.returncode == 1
    assert "Layers: each part of kit imports only from the parts below it BROKEN" in result.stdout
    assert "The kernel and the model clients import no service" in result.stdout
    assert "kit.core.errors -> kit.gateway.app" in result.stdout


def test_one_service_importing_the_other_breaks_their_independence(copy: Path) -> None:
    with (copy / "kit" / "rag_service" / "deps.py").open("a") as module:
        module.write("\nfrom kit.gateway.auth import ApiKey  # a deliberate violation\n")

    result = lint_imports(copy)

    assert result.returncode == 1
    assert "The gateway and the RAG service are independent of each other BROKEN" in result.stdout
    assert "kit.rag_service.deps -> kit.gateway.auth" in result.stdout


def test_a_subpackage_outside_every_layer_is_refused(copy: Path) -> None:
    (copy / "kit" / "extras").mkdir()
    (copy / "kit" / "extras" / "__init__.py").write_text('"""Not placed in a layer."""\n')

    result = lint_imports(copy)

    assert result.returncode == 1
    assert "kit.extras" in result.stdout
