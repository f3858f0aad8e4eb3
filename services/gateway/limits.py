"""Per-key request and token rate limits, and per-key spending budgets.

Counters live in this process by default, or in Redis when `REDIS_URL` is set, so that every
gateway replica enforces the same limit for a key. Rate limits use a moving one-minute window
(the `limits` library): a key with `rpm: 60` gets at most 60 requests in any 60 seconds, never
120 across a window boundary as a fixed window would allow.

Tokens are known only after the answer, so the token limit is checked before a request (is any
room left this minute?) and charged after it, with the tokens the provider reported.
"""

from __future__ import annotations

import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from services.gateway.auth import ApiKey
from services.gateway.errors import BudgetExceeded, RateLimited


class Limits:
    def __init__(self, redis_url: str | None) -> None:
        self.storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix="kit-limits")
            if redis_url
            else MemoryStorage()
        )
        self.window = MovingWindowRateLimiter(self.storage)

    async def admit(self, key: ApiKey) -> None:
        """Count one request for `key`; raise `RateLimited` (with Retry-After) when over."""
        if key.rpm is not None:
            rpm = RateLimitItemPerMinute(key.rpm)
            if not await self.window.hit(rpm, key.id, "requests"):
                raise RateLimited(
                    f"Key {key.id!r} is over its {key.rpm} requests per minute. "
                    "Retry after the time in the Retry-After header, or ask for a higher rpm.",
                    await self._seconds_to_room(rpm, key.id, "requests"),
                )
        if key.tpm is not None:
            tpm = RateLimitItemPerMinute(key.tpm)
            if not await self.window.test(tpm, key.id, "tokens"):
                raise RateLimited(
                    f"Key {key.id!r} has used its {key.tpm} tokens per minute. Retry after the "
                    "time in the Retry-After header, send shorter requests, or ask for more tpm.",
                    await self._seconds_to_room(tpm, key.id, "tokens"),
                )

    async def charge_tokens(self, key: ApiKey, tokens: int) -> None:
        if key.tpm is None or tokens <= 0:
            return
        tpm = RateLimitItemPerMinute(key.tpm)
        if not await self.window.hit(tpm, key.id, "tokens", cost=tokens):
            # More than the room left: fill the window, so the next request waits for it.
            stats = await self.window.get_window_stats(tpm, key.id, "tokens")
            if stats.remaining > 0:
                await self.window.hit(tpm, key.id, "tokens", cost=stats.remaining)

    async def _seconds_to_room(self, item: RateLimitItemPerMinute, *ids: str) -> float:
        stats = await self.window.get_window_stats(item, *ids)
        return max(1.0, stats.reset_time - time.time())

    async def ping(self) -> bool:
        return bool(await self.storage.check())


class Budgets:
    """Money spent per key, in USD: in memory, or in Redis (`INCRBYFLOAT`) when configured."""

    def __init__(self, redis_url: str | None) -> None:
        self._spent: dict[str, float] = {}
        self._redis = None
        if redis_url:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(redis_url)

    async def spent(self, key: ApiKey) -> float:
        if self._redis is None:
            return self._spent.get(key.id, 0.0)
        value = await self._redis.get(f"kit-budget:{key.id}")
        return float(value or 0.0)

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
        if self._redis is None:
            self._spent[key.id] = self._spent.get(key.id, 0.0) + usd
            return self._spent[key.id]
        return float(await self._redis.incrbyfloat(f"kit-budget:{key.id}", usd))

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
