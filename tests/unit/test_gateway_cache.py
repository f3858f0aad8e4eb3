"""The response cache: which requests share a key, which are cached at all, how the in-memory
backend stores entries, and how single flight sends a burst of identical requests upstream once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kit.gateway.cache import MemoryCache, SingleFlight, cache_key, is_cacheable

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


def body(**overrides: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0, **overrides}


# --- cache_key ------------------------------------------------------------------------------------


def test_keys_of_different_tenants_never_share_an_entry() -> None:
    assert cache_key("team-a", "m", body()) != cache_key("team-b", "m", body())


def test_key_ignores_the_order_of_keys() -> None:
    reordered = {"temperature": 0, "messages": MESSAGES, "model": "gpt-4o-mini"}

    assert cache_key("t", "gpt-4o-mini", body()) == cache_key("t", "gpt-4o-mini", reordered)


def test_key_treats_temperature_0_and_0_point_0_alike() -> None:
    assert cache_key("t", "m", body(temperature=0)) == cache_key("t", "m", body(temperature=0.0))


def test_key_ignores_stream_and_user() -> None:
    plain = cache_key("t", "m", body())

    assert cache_key("t", "m", body(stream=True, user="alice")) == plain
    assert cache_key("t", "m", body(stream=False, user="bob")) == plain


def test_key_differs_when_the_messages_differ() -> None:
    other = [{"role": "user", "content": "What is 2 + 3?"}]

    assert cache_key("t", "m", body()) != cache_key("t", "m", body(messages=other))


def test_key_differs_when_the_model_alias_differs() -> None:
    assert cache_key("t", "gpt-4o-mini", body()) != cache_key("t", "claude-haiku", body())


def test_key_differs_when_max_tokens_differs() -> None:
    assert cache_key("t", "m", body(max_tokens=10)) != cache_key("t", "m", body(max_tokens=20))


# --- is_cacheable ---------------------------------------------------------------------------------


def test_a_temperature_0_request_is_cacheable() -> None:
    assert is_cacheable(body(temperature=0), nondeterministic_too=False) is True


@pytest.mark.parametrize("request_body", [{"messages": MESSAGES}, body(temperature=0.7)])
def test_a_sampled_request_is_not_cacheable_by_default(request_body: dict[str, Any]) -> None:
    assert is_cacheable(request_body, nondeterministic_too=False) is False


def test_a_sampled_request_is_cacheable_when_nondeterministic_caching_is_on() -> None:
    assert is_cacheable(body(temperature=0.7), nondeterministic_too=True) is True


# --- MemoryCache ----------------------------------------------------------------------------------


def test_memory_cache_returns_what_was_set() -> None:
    async def scenario() -> dict[str, Any] | None:
        cache = MemoryCache(ttl_s=60, max_entries=10)
        await cache.set("k", {"choices": [{"text": "4"}]})
        return await cache.get("k")

    assert asyncio.run(scenario()) == {"choices": [{"text": "4"}]}


def test_mutating_a_cached_answer_does_not_change_the_next_one() -> None:
    async def scenario() -> dict[str, Any] | None:
        cache = MemoryCache(ttl_s=60, max_entries=10)
        await cache.set("k", {"choices": [{"text": "4"}]})
        first = await cache.get("k")
        assert first is not None
        first["choices"][0]["text"] = "changed"
        first["extra"] = True
        return await cache.get("k")

    assert asyncio.run(scenario()) == {"choices": [{"text": "4"}]}


def test_a_memory_cache_entry_expires_after_its_ttl() -> None:
    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        cache = MemoryCache(ttl_s=1, max_entries=10)
        await cache.set("k", {"answer": 4})
        fresh = await cache.get("k")
        await asyncio.sleep(1.1)
        return fresh, await cache.get("k")

    fresh, expired = asyncio.run(scenario())

    assert fresh == {"answer": 4}
    assert expired is None


# --- SingleFlight ---------------------------------------------------------------------------------


class CountingWork:
    """Work that takes 50 ms, counts its calls, and answers (or fails) the same each time."""

    def __init__(self, result: str = "answer", error: Exception | None = None) -> None:
        self.calls = 0
        self.result = result
        self.error = error

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(0.05)
        if self.error is not None:
            raise self.error
        return self.result


def test_concurrent_identical_requests_run_the_work_once() -> None:
    flight = SingleFlight()
    work = CountingWork()

    async def burst() -> list[tuple[str, bool]]:
        return await asyncio.gather(*(flight.run("k", work) for _ in range(10)))

    results = asyncio.run(burst())

    assert work.calls == 1
    assert [result for result, _ in results] == ["answer"] * 10
    assert sum(shared for _, shared in results) == 9


def test_concurrent_requests_with_different_keys_each_run() -> None:
    flight = SingleFlight()
    work_a, work_b = CountingWork("a"), CountingWork("b")

    async def both() -> list[tuple[str, bool]]:
        return list(await asyncio.gather(flight.run("a", work_a), flight.run("b", work_b)))

    results = asyncio.run(both())

    assert (work_a.calls, work_b.calls) == (1, 1)
    assert results == [("a", False), ("b", False)]


def test_when_the_work_fails_every_waiter_gets_the_error() -> None:
    flight = SingleFlight()
    work = CountingWork(error=RuntimeError("upstream down"))

    async def burst() -> list[BaseException | tuple[str, bool]]:
        return await asyncio.gather(
            *(flight.run("k", work) for _ in range(5)), return_exceptions=True
        )

    results = asyncio.run(burst())

    assert work.calls == 1
    assert len(results) == 5
    assert all(isinstance(r, RuntimeError) and str(r) == "upstream down" for r in results)


def test_after_a_failure_the_key_is_free_and_the_work_runs_again() -> None:
    flight = SingleFlight()
    failing = CountingWork(error=RuntimeError("upstream down"))
    working = CountingWork("recovered")

    async def fail_then_retry() -> tuple[str, bool]:
        with pytest.raises(RuntimeError):
            await flight.run("k", failing)
        return await flight.run("k", working)

    result = asyncio.run(fail_then_retry())

    assert result == ("recovered", False)
    assert (failing.calls, working.calls) == (1, 1)
