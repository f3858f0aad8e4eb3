"""Secrets: read from the environment or from a file (`NAME_FILE`), and kept out of every log.

A secret reaches the kit in one of two ways, never from a file checked into the repository:

    OPENAI_API_KEY=sk-...                              # the environment (or .env, in development)
    OPENAI_API_KEY_FILE=/run/secrets/openai_api_key    # a file: Docker and Kubernetes secrets

The `_FILE` form is the convention of Docker's official images (`POSTGRES_PASSWORD_FILE`): the value
never appears in `docker inspect`, in `/proc/<pid>/environ` or in a crash dump of the environment.
Setting both forms is an error, because which one wins would be a guess.

`SecretScrubber` is the last line of defence in logging: it replaces every known secret value and
any `Bearer <token>` with `[REDACTED]` in each rendered log line, so an upstream error message that
echoes a key, or an exception that prints a header, cannot leak it. This module knows nothing about
which services use which secrets; settings and the models file name them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from kit.core.errors import ConfigError

REDACTED = "[REDACTED]"

# Variable names that hold secrets by convention; their values are masked in every log line.
_SECRET_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|ACCESS_KEY)$", re.IGNORECASE)
# Shorter values are not masked: masking "abc" would garble ordinary words in every line.
_MIN_SECRET_LENGTH = 8
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def read_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of secret `name`: from the variable itself, or from the file `NAME_FILE` names.

    >>> read_secret("OPENAI_API_KEY", {"OPENAI_API_KEY": "sk-abc"})
    'sk-abc'
    >>> read_secret("OPENAI_API_KEY", {}) is None
    True
    """
    environ = os.environ if environ is None else environ
    value = environ.get(name) or None
    file_name = environ.get(f"{name}_FILE") or None
    if value and file_name:
        raise ConfigError(
            f"Both {name} and {name}_FILE are set; keep one (the file is the safer place for "
            "a secret in a container)."
        )
    if file_name is None:
        return value
    path = Path(file_name)
    try:
        # Editors and `echo` add a final newline; a key never ends with one.
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{name}_FILE is {path}, which cannot be read ({type(exc).__name__}: {exc}). Mount "
            f"the secret at that path, or unset {name}_FILE and set {name} instead."
        ) from None
    if not secret:
        raise ConfigError(f"{name}_FILE is {path}, which is empty; write the secret into it.")
    return secret


def secret_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Every secret the environment holds or points at: the values a log line must never show."""
    environ = os.environ if environ is None else environ
    names = {name.removesuffix("_FILE") for name in environ}
    values = set()
    for name in names:
        if not _SECRET_NAME.search(name):
            continue
        try:
            value = read_secret(name, environ)
        except ConfigError:
            continue  # reported where the secret is used; scrubbing must not fail logging
        if value and len(value) >= _MIN_SECRET_LENGTH:
            values.add(value)
    return values


class SecretScrubber:
    """Replace known secret values and bearer tokens in a rendered log line with [REDACTED].

    >>> SecretScrubber({"sk-live-123456"})(None, "info", 'key sk-live-123456, Bearer abcdefgh12')
    'key [REDACTED], Bearer [REDACTED]'
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        usable = sorted({s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)
        # One alternation, longest first, so a secret containing another is masked whole.
        self._values = re.compile("|".join(map(re.escape, usable))) if usable else None

    def __call__(self, _logger: object, _method: str, line: str) -> str:
        if self._values is not None:
            line = self._values.sub(REDACTED, line)
        return _BEARER.sub(rf"\g<1>{REDACTED}", line)
