"""Logging: one JSON object per line, carrying the request id, at the configured level."""

from __future__ import annotations

import json
import logging

import pytest

from kit.core.logging import bind_context, clear_context, configure_logging, get_logger
from kit.core.settings import KitSettings


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_bound_context_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(KitSettings(_env_file=None, log_format="json"))
    bind_context(request_id="req-123")
    try:
        get_logger("gateway").info("request_done", status=200, latency_ms=12.5)
    finally:
        clear_context()

    [line] = _json_lines(capsys.readouterr().err)
    assert line["event"] == "request_done"
    assert line["request_id"] == "req-123"
    assert line["level"] == "info"
    assert line["logger"] == "gateway"
    assert line["status"] == 200
    assert str(line["timestamp"]).endswith("Z")


def test_standard_library_records_get_the_same_shape(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(KitSettings(_env_file=None, log_format="json"))

    logging.getLogger("some.library").warning("disk %s is %d%% full", "/data", 91)

    [line] = _json_lines(capsys.readouterr().err)
    assert line["event"] == "disk /data is 91% full"
    assert line["level"] == "warning"
    assert line["logger"] == "some.library"


def test_level_from_settings_filters_lower_levels(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(KitSettings(_env_file=None, log_format="json", log_level="WARNING"))
    log = get_logger("test")

    log.info("hidden")
    log.warning("shown")

    assert [line["event"] for line in _json_lines(capsys.readouterr().err)] == ["shown"]


def test_exceptions_stay_on_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(KitSettings(_env_file=None, log_format="json"))
    try:
        raise ValueError("bad input")
    except ValueError:
        get_logger("test").exception("failed")

    [line] = _json_lines(capsys.readouterr().err)
    assert line["event"] == "failed"
    assert "ValueError" in json.dumps(line["exception"])


def test_console_format_is_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(KitSettings(_env_file=None, log_format="console"))

    get_logger("test").info("hello", answer=42)

    err = capsys.readouterr().err
    assert "hello" in err and "answer" in err and "42" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err)
