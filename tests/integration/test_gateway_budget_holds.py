"""Budget holds (src/kit/gateway/limits.py `Budgets`), in memory and in a real Redis: a request
holds its worst case before the call and settles its real cost after, atomically.

The attack tests (tests/e2e/attacks/test_budget_bypass.py) show a burst refused end to end; these
check the rules one by one: what counts as held, when a hold ends, and that a hold left in Redis
by a request during which Redis stopped answering is released when it answers again.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from kit.gateway.auth import ApiKey
from kit.gateway.errors import BudgetExceeded, ConcurrencyLimited
from kit.gateway.limits import Budgets
from kit.gateway.redis_health import RedisLink
from tests.support.servers import redis_server, require_tool

KEY = ApiKey(id="team-a", sha256="a" * 64, budget_usd=1.0)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@asynccontextmanager
async def budgets(backend: str, redis_url: str, hold_s: float = 600.0) -> AsyncIterator[Budgets]:
    if backend == "memory":
        yield Budgets(None, hold_s=hold_s)
        return
    link = RedisLink(redis_url)
    await link.client.flushdb()
    try:
        yield Budgets(link, hold_s=hold_s)
    finally:
        await link.aclose()


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_holds_count_against_the_budget_until_settled(backend: str, redis_url: str) -> None:
    async def scenario() -> tuple[float, str, float]:
        async with budgets(backend, redis_url) as ledger:
            first = await ledger.reserve(KEY, 0.6, None)
            with pytest.raises(BudgetExceeded) as refused:
                await ledger.reserve(KEY, 0.6, None)  # 0.6 held + 0.6 > 1.0
            total = await ledger.settle(first, 0.25)  # it cost less than its worst case
            second = await ledger.reserve(KEY, 0.6, None)  # 0.25 spent + 0.6 fits
            await ledger.settle(second, 0.0)
            return total, str(refused.value), await ledger.spent(KEY)

    total, message, spent = asyncio.run(scenario())

    assert total == pytest.approx(0.25)
    assert (
        "$0.4000 left of its $1.0000 budget ($0.6000 of it held by requests in flight)" in message
    )
    assert spent == pytest.approx(0.25)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_requests_in_flight_are_capped_per_key(backend: str, redis_url: str) -> None:
    free = ApiKey(id="team-b", sha256="b" * 64)  # no budget: only the cap applies

    async def scenario() -> None:
        async with budgets(backend, redis_url) as ledger:
            holds = [await ledger.reserve(free, 0.0, 2) for _ in range(2)]
            with pytest.raises(ConcurrencyLimited):
                await ledger.reserve(free, 0.0, 2)
            await ledger.settle(holds[0], 0.0)
            await ledger.reserve(free, 0.0, 2)  # one finished: room again

    asyncio.run(scenario())


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_hold_never_settled_expires(backend: str, redis_url: str) -> None:
    """A replica that dies mid-request never settles: its holds must not block the key."""

    async def scenario() -> None:
        async with budgets(backend, redis_url, hold_s=0.5) as ledger:
            await ledger.reserve(KEY, 0.9, 1)  # never settled
            with pytest.raises(ConcurrencyLimited):
                await ledger.reserve(KEY, 0.05, 1)
            await asyncio.sleep(0.7)
            await ledger.reserve(KEY, 0.9, 1)  # the first hold is gone

    asyncio.run(scenario())


def test_a_hold_left_in_redis_during_an_outage_is_released_when_it_returns(
    redis_url: str,
) -> None:
    """The request settles while Redis is silent: its cost waits in memory, its hold in Redis is
    removed on recovery, not 10 minutes later when it would expire."""
    cli = require_tool("redis-cli", "apt-get install redis-tools (or brew install redis)")
    port = redis_url.rsplit(":", 1)[1].split("/")[0]

    async def scenario() -> tuple[float, int]:
        async with budgets("redis", redis_url) as ledger:
            link = ledger._link
            assert link is not None
            hold = await ledger.reserve(KEY, 0.5, 1)
            # Writes block for 1.5 s: the settle times out (0.5 s) and the link goes down.
            pause = ["CLIENT", "PAUSE", "1500", "WRITE"]
            subprocess.run([cli, "-p", port, *pause], check=True, capture_output=True)
            await ledger.settle(hold, 0.2)
            assert link.status.startswith("degraded")
            for _ in range(100):  # the probe brings it back once the pause is over
                if link.up:
                    break
                await asyncio.sleep(0.1)
            spent = float(await link.client.get("kit-budget:team-a") or 0)
            held = int(await link.client.zcard("kit-holds:team-a"))
            return spent, held

    spent, held = asyncio.run(scenario())

    assert spent == pytest.approx(0.2)  # the cost reached Redis on recovery
    assert held == 0  # and the hold is gone: the key can send its next request
