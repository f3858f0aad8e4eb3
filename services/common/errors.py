"""The kit's shared exceptions. Every message says what happened and how to fix it.

    KitError                     base: catch this to handle any failure the kit raises on purpose
    ├── ConfigError              a setting is invalid or missing (raised at start-up)
    └── ModelUnavailableError    a local model's package or engine is missing or fails to load

Each service adds its own small tree under `KitError` and maps it once to HTTP responses, with a
stable JSON body in the OpenAI style: `{"error": {"type": ..., "message": ...}}`.
"""

from __future__ import annotations


class KitError(Exception):
    """Base of every error the kit raises deliberately; `type` names it in error bodies."""

    type = "kit_error"


class ConfigError(KitError):
    type = "invalid_configuration"


class ModelUnavailableError(KitError):
    type = "model_unavailable"
