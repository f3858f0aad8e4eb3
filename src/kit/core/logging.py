"""Structured logging for every process of the kit: JSON lines in production, readable at a tty.

One call, `configure_logging(settings)`, at the start of an entry point (the CLI, an app factory).
structlog renders both our own events and those of libraries that use the standard `logging`
module (uvicorn, httpx, LiteLLM), so every line has the same shape:

    {"event": "request", "level": "info", "logger": "gateway", "request_id": "9f1c...",
     "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
     "timestamp": "2026-11-29T03:14:15.926Z", "status": 200, "latency_ms": 12.3}

Values bound with `bind_context(request_id=...)` (see `kit.web.request_id`) appear on
every line logged while handling that request, across awaits, without passing them around.
Inside a span (src/kit/core/tracing.py), the trace and span ids are added to each line too.
This module knows nothing about HTTP; it only formats and routes log records.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import Processor

from kit.core.secrets import SecretScrubber, secret_values
from kit.core.settings import KitSettings
from kit.core.tracing import current_ids

# Libraries that log a line per HTTP call or per retry at INFO; they are useful at DEBUG only.
_CHATTY_LOGGERS = (
    "httpx",
    "httpcore",
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "urllib3",
    "sentence_transformers",
)

bind_context = structlog.contextvars.bind_contextvars
clear_context = structlog.contextvars.clear_contextvars


def configure_logging(settings: KitSettings) -> None:
    """Route all logging through structlog at the configured level and format. Idempotent."""
    level = logging.getLevelNamesMapping()[settings.log_level]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if settings.json_logs:
        # Tracebacks become one "exception" string field, so one event stays one line.
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer()

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # A logger assembles its processor chain once, on first use: ~2x cheaper per line.
        # Levels and rendering live in the stdlib handler below, so a later configure_logging()
        # still takes effect for loggers already in use.
        cache_logger_on_first_use=True,
    )
    # Runs on the finished line, so it also covers tracebacks and libraries' own messages.
    scrubber = SecretScrubber(secret_values() | settings.secret_values())
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,  # the same fields for records from plain `logging`
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
            scrubber,  # type: ignore[list-item]  # str in, str out: a post-render step
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # uvicorn installs its own handlers; send its records to ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


def _add_trace_ids(
    _: Any, __: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """`trace_id` and `span_id` of the current span (src/kit/core/tracing.py), so a log line
    leads to its trace and a trace to its log lines; nothing outside a span."""
    for name, value in current_ids().items():
        event.setdefault(name, value)
    return event


def get_logger(name: str, **initial: Any) -> structlog.stdlib.BoundLogger:
    """A logger that adds `name` as the `logger` field: `get_logger("gateway").info("ready")`."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **initial)
    return logger
