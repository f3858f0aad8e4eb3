"""The router: retries by error class, falls back along an alias's chain, rests failing
deployments, and gives up with errors that say what was tried.

The providers here are scripted fakes of the `Provider` protocol and time is a fake clock, so
every test is instant and decides exactly what each deployment does on each call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kit.gateway.config import GatewayModels, ModelsFile, resolve
from kit.gateway.errors import AllDeploymentsFailed, UnknownModel, UpstreamBadRequest
from kit.gateway.providers.base import (
    ChatAnswer,
    ChatCall,
    EmbedAnswer,
    Provider,
    ProviderError,
)
from kit.gateway.router import Router

ALIAS = "m"
CALL = ChatCall(messages=[{"role": "user", "content": "hi"}])
NO_RETRIES = {"server_error": 0, "rate_limit": 0, "timeout": 0, "connection": 0}

Outcome = ChatAnswer | ProviderError


def answer(name: str) -> ChatAnswer:
    return ChatAnswer(body={"answered_by": name}, prompt_tokens=1, completion_tokens=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedProvider:
    """Plays its outcomes in order, one per call (the last one repeats); logs each call."""

    def __init__(self, name: str, outcomes: list[Outcome], calls: list[str]) -> None:
        self.name = name
        self.outcomes = list(outcomes)
        self.calls = calls

    def _next(self) -> ChatAnswer:
        self.calls.append(self.name)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    async def chat(self, call: ChatCall, timeout: float) -> ChatAnswer:
        return self._next()

    async def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[dict[str, Any]]:
        body = self._next().body  # raises before the first chunk when scripted to fail
        yield {"chunk": 1, **body}
        yield {"chunk": 2, **body}

    async def embed(self, texts: list[str], timeout: float) -> EmbedAnswer:
        raise AssertionError("this fake serves chat only")

    async def aclose(self) -> None:
        pass


def build_models(names: list[str], **routing: Any) -> GatewayModels:
    """One chat alias, `m`, whose chain is `names`; no retries unless `routing` says so."""
    spec = ModelsFile.model_validate(
        {
            "default_model": ALIAS,
            "routing": {"retries": NO_RETRIES, "backoff_s": 0, "failures_to_cooldown": 100}
            | routing,
            "deployments": {name: {"provider": "local", "model": name} for name in names},
            "models": {ALIAS: names},
        }
    )
    return resolve(spec, environ={})


class Setup:
    """A router over scripted providers, with the calls it made and the fallbacks it reported."""

    def __init__(self, scripts: dict[str, list[Outcome]], **routing: Any) -> None:
        self.calls: list[str] = []
        self.fallbacks: list[tuple[str, str, str]] = []
        self.clock = FakeClock()
        providers: dict[str, Provider] = {
            name: ScriptedProvider(name, script, self.calls) for name, script in scripts.items()
        }
        self.router = Router(
            build_models(list(scripts), **routing),
            providers,
            on_fallback=lambda *event: self.fallbacks.append(event),
            clock=self.clock,
        )

    def chat(self) -> Any:
        return asyncio.run(self.router.chat(ALIAS, CALL))


def server_error() -> ProviderError:
    return ProviderError("server_error", "upstream 500", status=500)


def timeout() -> ProviderError:
    return ProviderError("timeout", "no answer in 60 s")


def rate_limited(retry_after: float | None = None) -> ProviderError:
    return ProviderError("rate_limit", "upstream 429", status=429, retry_after=retry_after)


# --- Fallback and retries -------------------------------------------------------------------------


def test_falls_back_in_chain_order_until_a_deployment_answers() -> None:
    setup = Setup({"a": [server_error()], "b": [timeout()], "c": [answer("c")]})

    routed = setup.chat()

    assert routed.result.body == {"answered_by": "c"}
    assert routed.deployment.name == "c"
    assert routed.fallbacks == 2
    assert setup.calls == ["a", "b", "c"]


def test_each_fallback_is_reported_with_the_deployment_left_and_why() -> None:
    setup = Setup({"a": [server_error()], "b": [timeout()], "c": [answer("c")]})

    setup.chat()

    assert setup.fallbacks == [(ALIAS, "a", "server_error"), (ALIAS, "b", "timeout")]


def test_server_errors_are_retried_on_the_same_deployment_before_falling_back() -> None:
    setup = Setup(
        {"a": [server_error()], "b": [answer("b")]},
        retries=NO_RETRIES | {"server_error": 2},
    )

    routed = setup.chat()

    assert setup.calls == ["a", "a", "a", "b"]
    assert routed.result.body == {"answered_by": "b"}
    assert routed.fallbacks == 1


def test_a_retry_that_succeeds_stays_on_the_same_deployment() -> None:
    setup = Setup(
        {"a": [server_error(), answer("a")], "b": [answer("b")]},
        retries=NO_RETRIES | {"server_error": 1},
    )

    routed = setup.chat()

    assert setup.calls == ["a", "a"]
    assert routed.deployment.name == "a"
    assert routed.fallbacks == 0


def test_rate_limits_are_not_retried_when_their_retries_are_zero() -> None:
    setup = Setup(
        {"a": [rate_limited()], "b": [answer("b")]},
        retries=NO_RETRIES | {"server_error": 2},
    )

    setup.chat()

    assert setup.calls == ["a", "b"]


def test_an_upstream_bad_request_is_returned_at_once_without_fallback() -> None:
    setup = Setup(
        {
            "a": [ProviderError("bad_request", "max_tokens too large", status=400)],
            "b": [answer("b")],
        }
    )

    with pytest.raises(UpstreamBadRequest, match="max_tokens too large"):
        setup.chat()
    assert setup.calls == ["a"]


# --- Cool-down ------------------------------------------------------------------------------------


def test_a_deployment_failing_failures_to_cooldown_times_is_skipped_while_it_rests() -> None:
    setup = Setup(
        {"a": [server_error()], "b": [answer("b")]}, failures_to_cooldown=2, cooldown_s=30
    )
    setup.chat()
    setup.chat()
    assert setup.calls == ["a", "b", "a", "b"]

    setup.calls.clear()
    routed = setup.chat()

    assert setup.calls == ["b"]
    assert routed.fallbacks == 0  # a resting deployment is skipped, not tried
    assert setup.router.resting() == ["a"]


def test_a_resting_deployment_is_tried_again_after_cooldown_s() -> None:
    setup = Setup(
        {"a": [server_error(), server_error(), answer("a")], "b": [answer("b")]},
        failures_to_cooldown=2,
        cooldown_s=30,
    )
    setup.chat()
    setup.chat()
    setup.calls.clear()

    setup.clock.now += 31
    routed = setup.chat()

    assert setup.calls == ["a"]
    assert routed.deployment.name == "a"


def test_a_429_with_retry_after_rests_the_deployment_that_long() -> None:
    setup = Setup({"a": [rate_limited(retry_after=5), answer("a")], "b": [answer("b")]})
    setup.chat()
    start = setup.clock.now
    setup.calls.clear()

    setup.clock.now = start + 4
    setup.chat()
    assert setup.calls == ["b"]

    setup.clock.now = start + 6
    setup.chat()
    assert setup.calls == ["b", "a"]


# --- Giving up ------------------------------------------------------------------------------------


def test_when_every_deployment_fails_the_error_is_a_502_naming_each_one() -> None:
    setup = Setup({"a": [timeout()], "b": [server_error()]})

    with pytest.raises(AllDeploymentsFailed) as raised:
        setup.chat()

    assert raised.value.status == 502
    assert "a: no answer in 60 s" in str(raised.value)
    assert "b: upstream 500" in str(raised.value)


def test_when_the_last_deployment_timed_out_the_error_is_a_504() -> None:
    setup = Setup({"a": [server_error()], "b": [timeout()]})

    with pytest.raises(AllDeploymentsFailed) as raised:
        setup.chat()

    assert raised.value.status == 504
    assert raised.value.code == "upstream_timeout"


def test_an_unknown_alias_is_unknown_model() -> None:
    setup = Setup({"a": [answer("a")]})

    with pytest.raises(UnknownModel, match="'no-such-model'"):
        asyncio.run(setup.router.chat("no-such-model", CALL))
    assert setup.calls == []


def test_asking_a_chat_alias_for_embeddings_is_unknown_model() -> None:
    setup = Setup({"a": [answer("a")]})

    with pytest.raises(UnknownModel, match=f"'{ALIAS}'"):
        asyncio.run(setup.router.embed(ALIAS, ["hello"]))


# --- Streaming ------------------------------------------------------------------------------------


def test_a_stream_failing_before_its_first_chunk_falls_back_to_the_next_deployment() -> None:
    setup = Setup({"a": [server_error()], "b": [answer("b")]})

    async def start_and_drain() -> tuple[Any, list[dict[str, Any]], int]:
        routed = await setup.router.stream(ALIAS, CALL)
        first, rest = routed.result
        return first, [chunk async for chunk in rest], routed.fallbacks

    first, rest, fallbacks = asyncio.run(start_and_drain())

    assert first == {"chunk": 1, "answered_by": "b"}
    assert rest == [{"chunk": 2, "answered_by": "b"}]
    assert fallbacks == 1
    assert setup.calls == ["a", "b"]
