"""Structured output: a JSON object that matches a JSON Schema, retried with the error sent back.

    result = ask_json(chat, template.render(text=...), template.output_schema, retries=2)
    result.value      # the parsed, validated object
    result.attempts   # every reply and what was wrong with it, in order

One attempt: find the first JSON object in the reply (models wrap it in prose or ```json
fences), validate it against the schema, and on failure append the reply and a user turn that
quotes the error ("amount: '20' is not of type 'number'"), then ask again. After `retries`
failed retries it raises `StructuredOutputError` holding every attempt: an invalid reply is an
error, never a silent pass or a default.

The retry conversation itself is `RepairLoop`, which does no I/O: you send its `messages`, give
it the reply, and it tells you the value or the next messages. `ask_structured` drives it with a
sync chat callable and `ask_structured_async` with an async one (the evaluation judge's), so
both share one loop. `parse` can be any function that raises ValueError: JSON + schema here,
a pydantic model in src/kit/evaluate/judge.py.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

# jsonschema ships no type hints (typeshed's types-jsonschema has them); typed on our side.
import jsonschema  # type: ignore[import-untyped, unused-ignore]

from kit.core.errors import ConfigError, KitError
from kit.core.ports import ChatMessage
from kit.prompting.chat import Chat

T = TypeVar("T")
Parse = Callable[[str], T]
CORRECTION = (
    "That reply was not valid ({error}). Reply with the JSON object only, in the shape asked for."
)


class InvalidOutput(ValueError):
    """One reply is not what was asked for; the message says why, for the model to read."""


class StructuredOutputError(KitError):
    """No valid reply within the allowed attempts; `attempts` holds each reply and its error."""

    type = "invalid_model_output"

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        last = attempts[-1].error if attempts else "no attempt was made"
        super().__init__(f"no valid reply in {len(attempts)} attempt(s); the last: {last}")
        self.attempts = list(attempts)


@dataclass(frozen=True)
class Attempt:
    reply: str
    error: str | None  # None: this reply was valid


@dataclass(frozen=True)
class Structured(Generic[T]):
    value: T
    attempts: list[Attempt]


# --- Parsing: text -> JSON object -> validated against the schema --------------------------------


def extract_json(text: str) -> dict[str, Any]:
    """The JSON object that starts at the first "{" of `text`; what follows it is ignored."""
    start = text.find("{")
    if start < 0:
        raise InvalidOutput("the reply holds no JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:  # "Expecting ',' delimiter: line 1 column 15 (char 14)"
        raise InvalidOutput(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):  # cannot happen from "{", but the type checker cannot know
        raise InvalidOutput("the reply's JSON is not an object")
    return value


def check_schema(schema: Mapping[str, Any]) -> Any:
    """A validator for `schema`; a broken schema is a programming error, raised as ConfigError."""
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"invalid JSON Schema: {exc.message}") from None
    return cls(schema)


def validate(value: Any, schema: Mapping[str, Any]) -> None:
    """Raise InvalidOutput listing every schema violation as "path: message"."""
    errors = sorted(check_schema(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        raise InvalidOutput("; ".join(_describe(error) for error in errors))


def parse_json(reply: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The reply's JSON object, validated against `schema`; raises InvalidOutput."""
    value = extract_json(reply)
    validate(value, schema)
    return value


def _describe(error: Any) -> str:  # a jsonschema.ValidationError
    where = ".".join(str(part) for part in error.absolute_path) or "(the object)"
    return f"{where}: {error.message}"


# --- The retry conversation, without I/O ---------------------------------------------------------


@dataclass
class RepairLoop(Generic[T]):
    """Send `messages`, `feed` the reply; repeat while `feed` returns None.

    Each invalid reply is appended with a correction turn quoting its error, so the model sees
    what it wrote and what was wrong with it. With `retries=2` the model gets three tries.
    """

    messages: list[ChatMessage]
    parse: Parse[T]
    retries: int = 2
    correction: str = CORRECTION
    attempts: list[Attempt] = field(default_factory=list)

    def feed(self, reply: str) -> T | None:
        """The parsed value, or None with `messages` extended for the next try.
        Raises StructuredOutputError when the reply was invalid and no tries are left."""
        try:
            value = self.parse(reply)
        except ValueError as exc:
            self.attempts.append(Attempt(reply, str(exc)))
            if len(self.attempts) > self.retries:
                raise StructuredOutputError(self.attempts) from None
            self.messages = [
                *self.messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": self.correction.format(error=exc)},
            ]
            return None
        self.attempts.append(Attempt(reply, None))
        return value


def ask_structured(
    chat: Chat, messages: Sequence[ChatMessage], parse: Parse[T], *, retries: int = 2
) -> Structured[T]:
    """Ask until `parse` accepts a reply, at most 1 + `retries` times."""
    loop = RepairLoop(list(messages), parse, retries)
    while True:
        value = loop.feed(chat(loop.messages).text)
        if value is not None:
            return Structured(value, loop.attempts)


async def ask_structured_async(
    chat: Callable[[list[ChatMessage]], Awaitable[str]],
    messages: Sequence[ChatMessage],
    parse: Parse[T],
    *,
    retries: int = 2,
) -> Structured[T]:
    """`ask_structured` for an async chat callable that returns the reply's text."""
    loop = RepairLoop(list(messages), parse, retries)
    while True:
        value = loop.feed(await chat(loop.messages))
        if value is not None:
            return Structured(value, loop.attempts)


def ask_json(
    chat: Chat, messages: Sequence[ChatMessage], schema: Mapping[str, Any], *, retries: int = 2
) -> Structured[dict[str, Any]]:
    """A JSON object matching `schema`; raises StructuredOutputError after 1 + `retries` tries."""
    check_schema(schema)  # a broken schema fails before any model call
    return ask_structured(chat, messages, partial(parse_json, schema=schema), retries=retries)
