"""What every `kit` command shares: settings loaded once, logging configured, errors shown plainly.

Settings are loaded when a command first asks for them, not in the root callback, so that
`kit doctor` can still run, and report the problem, when a setting is invalid.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from kit.core.errors import ConfigError, KitError
from kit.core.logging import configure_logging
from kit.core.settings import KitSettings, load_settings
from kit.core.tracing import configure_tracing, flush, tracer

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class CliState:
    env_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: KitSettings | None = None

    def settings(self) -> KitSettings:
        """Load (once) and return the settings; raises `ConfigError` when they are invalid."""
        if self._settings is None:
            kwargs: dict[str, Any] = dict(self.overrides)
            if self.env_file is not None:
                kwargs["_env_file"] = self.env_file
            self._settings = load_settings(KitSettings, **kwargs)
            configure_logging(self._settings)
        return self._settings


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # a command invoked without the root callback (tests)
        obj = ctx.find_root().obj = CliState()
    return obj


def exits_on_kit_error(command: Callable[P, R]) -> Callable[P, R]:
    """Show a `KitError` as one red message (no traceback) and exit 2 for configuration, else 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except KitError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(code=2 if isinstance(exc, ConfigError) else 1) from None

    return wrapper


@contextmanager
def traced(settings: KitSettings, job: str | None = None, **attributes: Any) -> Iterator[None]:
    """Trace what runs inside (src/kit/core/tracing.py): with `job`, as one trace whose root
    span is `kit JOB`; without, each request the block makes is its own trace (`kit eval
    answers`: one per question). Every span is exported before the command returns."""
    configure_tracing(settings, "cli")
    try:
        if job is None:
            yield
        else:
            with tracer().start_as_current_span(f"kit {job}", attributes=attributes):
                yield
    finally:
        flush()
