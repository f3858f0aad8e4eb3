"""The two windows of questions a drift run compares.

    reference  what the system was built and tested for: a question file (default: the shipped
               evaluation set, data/rag/fastapi-docs-questions.jsonl), or an earlier span of the
               query log ("14d..7d": from 14 days ago to 7 days ago)
    current    what users ask now: the query log's last hours or days ("24h", "7d"), or its
               last N records

This module reads files and picks records by time; it embeds nothing and scores nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kit.core.errors import ConfigError, KitError
from kit.core.logging import get_logger
from kit.drift.store import QueryRecord, read_records

log = get_logger(__name__)

DEFAULT_REFERENCE = Path("data/rag/fastapi-docs-questions.jsonl")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
HOW_TO_LOG = (
    "The RAG service appends every /ask question to its query log (RAG_QUERY_LOG, on by "
    "default: KIT_DATA_DIR/rag-queries.jsonl). Run `kit serve rag` and ask it questions, or "
    "pass --log PATH to a log you have."
)


class NotEnoughQuestions(KitError):
    """A window is empty or too small to score; the message says how to get a usable one."""

    type = "not_enough_questions"


@dataclass(frozen=True)
class Window:
    name: str  # "reference" or "current"
    source: str  # where the questions came from, in words, for the report
    questions: list[str]
    refused: list[bool] | None = None  # known when every record of a log window has it
    start: datetime | None = None  # the span of a log window
    end: datetime | None = None

    def __len__(self) -> int:
        return len(self.questions)


def parse_duration(text: str) -> timedelta:
    """'30m', '12h', '7d', '2w' -> a timedelta; anything else is a ConfigError.

    >>> parse_duration("36h")
    datetime.timedelta(days=1, seconds=43200)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", text)
    if match is None:
        raise ConfigError(f"{text!r} is not a duration: use a number and m, h, d or w, e.g. 7d")
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


def parse_span(text: str) -> tuple[timedelta, timedelta]:
    """'14d..7d' -> (14 days, 7 days): from 14 days ago until 7 days ago."""
    start, separator, end = text.partition("..")
    if not separator:
        raise ConfigError(f"{text!r} is not a span: use OLDER..NEWER ages, e.g. 14d..7d")
    older, newer = parse_duration(start), parse_duration(end)
    if older <= newer:
        raise ConfigError(f"{text!r}: the first age must be older (larger) than the second")
    return older, newer


def question_file(path: Path, name: str = "reference") -> Window:
    """Every question of a file: JSONL with a "question" field per line (an evaluation set or a
    query log alike), or plain text with one question per line."""
    if not path.is_file():
        raise ConfigError(
            f"Question file {path} not found. The shipped reference is {DEFAULT_REFERENCE} "
            "(run from the repository root), or pass --reference PATH."
        )
    questions: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix in (".jsonl", ".json"):
            try:
                question = json.loads(line)["question"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}:{number}: no question field ({exc})") from None
            questions.append(str(question))
        else:
            questions.append(line.strip())
    return Window(name, str(path), questions)


def log_window(
    path: Path,
    *,
    now: datetime,
    since: timedelta | None = None,
    until: timedelta = timedelta(0),
    last: int | None = None,
    collection: str | None = None,
    name: str = "current",
) -> Window:
    """The questions of the query log asked between `since` and `until` ago (or its `last` N),
    for `collection` when the records name one."""
    if not path.is_file():
        raise NotEnoughQuestions(f"No query log at {path}. {HOW_TO_LOG}")
    contents = read_records(path)
    if contents.malformed:
        log.warning("query_log_malformed_lines", path=str(path), lines=contents.malformed)
    records = [
        r for r in contents.records if collection is None or r.collection in (None, collection)
    ]
    scope = f" for collection {collection!r}" if collection else ""
    if not records:
        raise NotEnoughQuestions(
            f"The query log {path} holds no questions{scope} ({len(contents.records)} records, "
            f"{contents.malformed} malformed lines). {HOW_TO_LOG}"
        )
    records.sort(key=lambda r: r.ts)
    if last is not None:
        picked = records[-last:]
        described = f"{path}, last {len(picked)} questions"
    else:
        start = now - since if since is not None else records[0].ts
        end = now - until
        picked = [r for r in records if start <= r.ts <= end]
        described = f"{path}, {_ago(since)}..{_ago(until)}"
        if not picked:
            raise NotEnoughQuestions(
                f"No questions{scope} in {path} from {start:%Y-%m-%d %H:%M} to "
                f"{end:%Y-%m-%d %H:%M} UTC: its {len(records)} questions run from "
                f"{records[0].ts:%Y-%m-%d %H:%M} to {records[-1].ts:%Y-%m-%d %H:%M}. "
                "Widen the window (--window, --reference-window) or use --last N."
            )
    return Window(
        name,
        described,
        [r.question for r in picked],
        refused=_refusals(picked),
        start=picked[0].ts,
        end=picked[-1].ts,
    )


def require(window: Window, minimum: int) -> None:
    """Refuse to score a window too small for stable scores (see `score.Thresholds`)."""
    if len(window) < minimum:
        raise NotEnoughQuestions(
            f"The {window.name} window has {len(window)} questions ({window.source}); "
            f"at least {minimum} are needed for stable scores. Widen the window, or lower "
            "--min-queries knowing that small windows give noisy scores."
        )


def _refusals(records: list[QueryRecord]) -> list[bool] | None:
    flags = [r.refused for r in records]
    if any(flag is None for flag in flags):
        return None  # a partial rate would mislead; the check is left out
    return [bool(flag) for flag in flags]


def _ago(age: timedelta | None) -> str:
    if age is None:
        return "start"
    if not age:
        return "now"
    hours = age.total_seconds() / 3600
    return f"{hours / 24:g}d" if hours >= 24 and hours % 24 == 0 else f"{hours:g}h"
