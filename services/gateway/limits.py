"""Per-key request and token rate limits, and per-key spending budgets.

Counters live in this process by default, or in Redis when `REDIS_URL` is set, so that every
gateway replica enforces the same limit for a key. Rate limits use a moving one-minute window
(the `limits` library): a key with `rpm: 60` gets at most 60 requests in any 60 seconds, never
120 across a window boundary as a fixed window would allow.

Tokens are known only after the answer, so the token limit is checked before a request (is any
room left this minute?) and charged after it, with the tokens the provider reported.

While Redis is unreachable (see `redis_health.py`) each replica counts in its own memory: rate
limits still apply, per replica; spending is kept and added to Redis when it returns.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from services.gateway.auth import ApiKey
from services.gateway.errors import BudgetExceeded, RateLimited
from services.gateway.redis_health import RedisLink

T = TypeVar("T")


class Limits:
    def __init__(self, link: RedisLink | None) -> None:
        self._link = link
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if link is not None:
            # The link's connection pool, so these calls get its short timeouts and its retry.
            # (`limits` types its options as scalars; the pool is passed through to redis-py.)
            pool: Any = link.client.connection_pool
            storage = RedisStorage(
                f"async+{link.url}",
                implementation="redispy",
                key_prefix="kit-limits",
                connection_pool=pool,
            )
            self._shared = MovingWindowRateLimiter(storage)

    async def _window(self, use: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        """`use` the shared (Redis) window, or this replica's own while Redis is down."""
        shared = self._shared
        if self._link is None or shared is None:
            return await use(self._local)
        return await self._link.run(lambda: use(shared), lambda: use(self._local))

    async def admit(self, key: ApiKey) -> None:
        """Count one request for `key`; raise `RateLimited` (with Retry-After) when over."""
        if key.rpm is not None:
            rpm = RateLimitItemPerMinute(key.rpm)
            if not await self._window(lambda w: w.hit(rpm, key.id, "requests")):
                raise RateLimited(
                    f"Key {key.id!r} is over its {key.rpm} requests per minute. "
                    "Retry after the time in the Retry-After header, or ask for a higher rpm.",
                    await self._seconds_to_room(rpm, key.id, "requests"),
                )
        if key.tpm is not None:
            tpm = RateLimitItemPerMinute(key.tpm)
            if not await self._window(lambda w: w.test(tpm, key.id, "tokens")):
                raise RateLimited(
                    f"Key {key.id!r} has used its {key.tpm} tokens per minute. Retry after the "
                    "time in the Retry-After header, send shorter requests, or ask for more tpm.",
                    await self._seconds_to_room(tpm, key.id, "tokens"),
                )

    async def charge_tokens(self, key: ApiKey, tokens: int) -> None:
        if key.tpm is None or tokens <= 0:
            return
        tpm = RateLimitItemPerMinute(key.tpm)

        async def charge(window: MovingWindowRateLimiter) -> None:
            if not await window.hit(tpm, key.id, "tokens", cost=tokens):
                # More than the room left: fill the window, so the next request waits for it.
                stats = await window.get_window_stats(tpm, key.id, "tokens")
                if stats.remaining > 0:
                    await window.hit(tpm, key.id, "tokens", cost=stats.remaining)

        await self._window(charge)

    async def _seconds_to_room(self, item: RateLimitItemPerMinute, *ids: str) -> float:
        stats = await self._window(lambda w: w.get_window_stats(item, *ids))
        return max(1.0, stats.reset_time - time.time())


class Budgets:
    """Money spent per key, in USD: in memory, or in Redis (`INCRBYFLOAT`) when configured.

    While Redis is down, spending is added up here and written to Redis when it returns (a
    recovery hook), so no spending is lost. Meanwhile this replica checks a budget against the
    last total it read from Redis plus its own spending: replicas together can overspend by what
    the others spent during the outage, a trade for serving at all.
    """

    def __init__(self, link: RedisLink | None) -> None:
        self._link = link
        self._spent: dict[str, float] = {}  # all spending (no Redis) or the outage's (Redis down)
        self._last_shared: dict[str, float] = {}  # the last total read from Redis, per key
        if link is not None:
            link.on_recovery(self.hand_back)

    async def spent(self, key: ApiKey) -> float:
        link = self._link
        if link is None:
            return self._spent.get(key.id, 0.0)

        async def shared() -> float:
            value = float(await link.client.get(f"kit-budget:{key.id}") or 0.0)
            self._last_shared[key.id] = value
            return value

        return await link.run(shared, lambda: self._local_view(key.id))

    async def check(self, key: ApiKey) -> None:
        if key.budget_usd is None:
            return
        spent = await self.spent(key)
        if spent >= key.budget_usd:
            raise BudgetExceeded(
                f"Key {key.id!r} has spent ${spent:.4f} of its ${key.budget_usd:.2f} budget. "
                "Raise budget_usd for this key in the keys file, or use another key."
            )

    async def spend(self, key: ApiKey, usd: float) -> float:
        """Add `usd` to the key's spending; returns the key's total spent so far."""
        if usd <= 0:
            return await self.spent(key)
        link = self._link
        if link is None:
            return self._add_locally(key.id, usd)

        async def shared() -> float:
            value = float(await link.client.incrbyfloat(f"kit-budget:{key.id}", usd))
            self._last_shared[key.id] = value
            return value

        async def local() -> float:
            self._add_locally(key.id, usd)
            return await self._local_view(key.id)

        return await link.run(shared, local)

    async def hand_back(self) -> None:
        """Add the spending counted during a Redis outage to the shared totals.

        One key at a time, each removed before its write and put back if the write fails: a
        request that spends meanwhile adds a new entry, which this loop also takes."""
        if self._link is None:
            return
        while self._spent:
            key_id, usd = self._spent.popitem()
            try:
                total = await self._link.client.incrbyfloat(f"kit-budget:{key_id}", usd)
            except BaseException:  # Redis gone again, or shutdown: keep the amount for later
                self._add_locally(key_id, usd)
                raise
            self._last_shared[key_id] = float(total)

    def _add_locally(self, key_id: str, usd: float) -> float:
        self._spent[key_id] = self._spent.get(key_id, 0.0) + usd
        return self._spent[key_id]

    async def _local_view(self, key_id: str) -> float:
        return self._last_shared.get(key_id, 0.0) + self._spent.get(key_id, 0.0)
