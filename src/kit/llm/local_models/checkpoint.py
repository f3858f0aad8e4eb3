"""A Hugging Face checkpoint of SmolLM2, made once from the shipped GGUF file and cached.

transformers can read a GGUF file, but dequantizing it takes ~20 s on 2 cores, every time. We do
it once and save a plain float32 checkpoint (config, tokenizer, safetensors, ~520 MB) under
`KIT_CACHE_DIR/models/`, which then loads in about a second. The transformers engine and the
fine-tuning pipeline both start from it. The folder is rebuildable: delete it and the next load
makes it again. It never goes into the repository.

    cache_dir/models/smollm2-135m-instruct-f32-<first 12 hex of the GGUF's sha256>/
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kit.core.logging import get_logger
from kit.core.settings import KitSettings
from kit.llm.local_models.paths import SMOLLM2

log = get_logger(__name__)

# transformers and sentence-transformers try the Hugging Face Hub for missing files. The kit's
# models are complete on disk; these make a missing file an immediate error, not a network wait.
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Forbid Hub downloads while loading; restores the caller's environment afterwards."""
    from transformers.utils import logging as transformers_logging

    # A progress bar per load is noise in a service's logs; load times are logged instead.
    quiet: Any = transformers_logging.disable_progress_bar  # untyped in transformers
    quiet()
    saved = {name: os.environ.get(name) for name in _OFFLINE_ENV}
    os.environ.update(_OFFLINE_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def checkpoint_dir(settings: KitSettings, gguf: Path) -> Path:
    """Where the checkpoint for this exact GGUF file lives (a new file gets a new folder)."""
    return settings.models_cache_dir / f"{SMOLLM2.name}-f32-{file_digest(gguf)[:12]}"


def ensure_hf_checkpoint(settings: KitSettings) -> Path:
    """Return the cached checkpoint's folder, converting the GGUF file first if needed."""
    gguf = SMOLLM2.path()
    target = checkpoint_dir(settings, gguf)
    if (target / "config.json").exists():
        return target
    settings.models_cache_dir.mkdir(parents=True, exist_ok=True)
    # Build in a private folder, then rename: a reader never sees half a checkpoint, and two
    # processes converting at once both succeed (the second rename loses and cleans up).
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    log.info("converting_gguf_checkpoint", source=str(gguf), target=str(target))
    try:
        _convert(gguf, staging)
        staging.replace(target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with offline_hub():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    # The loaded model remembers it came from GGUF and refuses `save_pretrained`; a fresh model
    # built from the same config, minus that marker, takes the dequantized weights and saves.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    auto: Any = AutoModelForCausalLM  # from_config is untyped
    plain = auto.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
