"""Per-key request and token rate limits, spending budgets, and requests in flight.

Counters live in this process by default, or in Redis when `REDIS_URL` is set, so that every
gateway replica enforces the same limit for a key. Rate limits use a moving one-minute window
(the `limits` library): a key with `rpm: 60` gets at most 60 requests in any 60 seconds, never
120 across a window boundary as a fixed window would allow.

Tokens are known only after the answer, so the token limit is checked before a request (is any
room left this minute?) and charged after it, with the tokens the provider reported.

Budgets are held before a call, not checked and hoped for: see `Budgets`.

While Redis is unreachable (see `redis_health.py`) each replica counts in its own memory: rate
limits still apply, per replica; spending is kept and added to Redis when it returns.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from kit.gateway.auth import ApiKey
from kit.gateway.errors import BudgetExceeded, ConcurrencyLimited, RateLimited
from kit.gateway.redis_health import RedisLink

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


# Reserve, atomically, in Redis: drop holds past their expiry, refuse when the key has
# `max_concurrent` requests in flight or when spent + held + this hold would pass the budget, else
# add the hold. One script, so no other replica's request can run between the check and the add.
# Holds are members "token|usd" of a sorted set scored by their expiry time, on Redis's clock (so
# replicas' clocks need not agree).
#   KEYS: spent, holds   ARGV: token, usd, budget (-1: none), max_concurrent (0: none), hold_s
_RESERVE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local holds = redis.call('ZRANGE', KEYS[2], 0, -1)
local cap = tonumber(ARGV[4])
if cap > 0 and #holds >= cap then return {'concurrency', tostring(#holds)} end
local held = 0
for _, member in ipairs(holds) do held = held + tonumber(string.match(member, '|(.*)$')) end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local budget = tonumber(ARGV[3])
if budget >= 0 and spent + held + tonumber(ARGV[2]) > budget then
  return {'budget', tostring(spent), tostring(held)}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1] .. '|' .. ARGV[2])
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[5])) + 60)
return {'ok'}
"""
# Settle: release the hold and add what the request really cost, in one step.
#   KEYS: spent, holds   ARGV: member ("token|usd"), usd spent
_SETTLE = """
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
"""


@dataclass(frozen=True)
class Hold:
    """Money set aside for one request in flight: its worst case, until the answer is priced."""

    key_id: str
    token: str
    usd: float
    shared: bool  # held in Redis (True) or in this replica's memory

    @property
    def member(self) -> str:
        return f"{self.token}|{self.usd!r}"


class Budgets:
    """Money spent per key, in USD, and the requests each key has in flight.

    Checking "spent < budget" before a call and adding the cost after it lets a burst through:
    50 concurrent requests all see the same "spent" and all pass. So each request first holds
    its worst-case cost (the prompt, estimated, plus every token it may generate, at the
    dearest deployment of its model) and is refused if spent + held + this hold would pass the
    budget; after the answer the hold is released and the real cost added. Check and hold are
    one atomic step: a Lua script in Redis, no await in between in memory. The holds also count
    the key's requests in flight, so the same step enforces `max_concurrent`.

    A hold expires after `hold_s`, so a replica that dies mid-request cannot block a key
    forever. While Redis is down, holds and spending live in this replica's memory; spending is
    written to Redis when it returns (`hand_back`), so none is lost. Meanwhile this replica
    checks a budget against the last total it read from Redis plus its own spending: replicas
    together can overspend by what the others spent during the outage, a trade for serving.
    """

    def __init__(self, link: RedisLink | None, *, hold_s: float = 600.0) -> None:
        self._link = link
        self._hold_s = hold_s
        self._spent: dict[str, float] = {}  # all spending (no Redis) or the outage's (Redis down)
        self._last_shared: dict[str, float] = {}  # the last total read from Redis, per key
        self._holds: dict[str, dict[str, tuple[float, float]]] = {}  # key -> token -> (usd, end)
        self._orphans: list[Hold] = []  # holds left in Redis by requests it went away during
        if link is not None:
            link.on_recovery(self.hand_back)
            self._reserve_script = link.client.register_script(_RESERVE)
            self._settle_script = link.client.register_script(_SETTLE)

    async def spent(self, key: ApiKey) -> float:
        link = self._link
        if link is None:
            return self._spent.get(key.id, 0.0)

        async def shared() -> float:
            value = float(await link.client.get(_spent_key(key.id)) or 0.0)
            self._last_shared[key.id] = value
            return value

        return await link.run(shared, lambda: self._local_view(key.id))

    async def reserve(self, key: ApiKey, usd: float, max_concurrent: int | None) -> Hold:
        """Hold `usd` for one request of `key`; raise `BudgetExceeded` or `ConcurrencyLimited`."""
        token = uuid.uuid4().hex
        link = self._link
        if link is None:
            return self._reserve_locally(key, token, usd, max_concurrent)

        async def shared() -> Hold:
            budget = -1.0 if key.budget_usd is None else key.budget_usd
            answer = await self._reserve_script(
                keys=[_spent_key(key.id), _holds_key(key.id)],
                args=[token, repr(usd), repr(budget), max_concurrent or 0, self._hold_s],
            )
            verdict = [part.decode() if isinstance(part, bytes) else str(part) for part in answer]
            if verdict[0] == "concurrency":
                raise _too_many(key, max_concurrent or 0)
            if verdict[0] == "budget":
                self._last_shared[key.id] = float(verdict[1])
                raise _over_budget(key, float(verdict[1]), float(verdict[2]), usd)
            return Hold(key.id, token, usd, shared=True)

        async def local() -> Hold:
            return self._reserve_locally(key, token, usd, max_concurrent)

        return await link.run(shared, local)

    async def settle(self, hold: Hold, usd: float) -> float:
        """Release `hold` and add `usd`, what the request cost; returns the key's total spent."""
        link = self._link
        if not hold.shared or link is None:
            self._holds.get(hold.key_id, {}).pop(hold.token, None)
            if link is None:
                return self._add_locally(hold.key_id, usd)
            self._add_locally(hold.key_id, usd)
            return await self._local_view(hold.key_id)

        async def shared() -> float:
            total = float(
                await self._settle_script(
                    keys=[_spent_key(hold.key_id), _holds_key(hold.key_id)],
                    args=[hold.member, repr(usd)],
                )
            )
            self._last_shared[hold.key_id] = total
            return total

        async def local() -> float:
            # Redis went away mid-request: the spending waits here for `hand_back`, which also
            # releases the hold left in Redis (or it expires on its own after `hold_s`).
            self._orphans.append(hold)
            self._add_locally(hold.key_id, usd)
            return await self._local_view(hold.key_id)

        return await link.run(shared, local)

    async def hand_back(self) -> None:
        """Add the spending counted during a Redis outage to the shared totals.

        One key at a time, each removed before its write and put back if the write fails: a
        request that spends meanwhile adds a new entry, which this loop also takes."""
        if self._link is None:
            return
        while self._orphans:
            hold = self._orphans.pop()
            try:
                await self._link.client.zrem(_holds_key(hold.key_id), hold.member)
            except BaseException:
                self._orphans.append(hold)
                raise
        while self._spent:
            key_id, usd = self._spent.popitem()
            try:
                total = await self._link.client.incrbyfloat(_spent_key(key_id), usd)
            except BaseException:  # Redis gone again, or shutdown: keep the amount for later
                self._add_locally(key_id, usd)
                raise
            self._last_shared[key_id] = float(total)

    def _reserve_locally(
        self, key: ApiKey, token: str, usd: float, max_concurrent: int | None
    ) -> Hold:
        """The same rule as the Redis script; atomic because nothing here awaits."""
        now = time.monotonic()
        holds = self._holds.setdefault(key.id, {})
        for expired in [t for t, (_, end) in holds.items() if end <= now]:
            del holds[expired]
        if max_concurrent and len(holds) >= max_concurrent:
            raise _too_many(key, max_concurrent)
        held = sum(amount for amount, _ in holds.values())
        spent = self._last_shared.get(key.id, 0.0) + self._spent.get(key.id, 0.0)
        if key.budget_usd is not None and spent + held + usd > key.budget_usd:
            raise _over_budget(key, spent, held, usd)
        holds[token] = (usd, now + self._hold_s)
        return Hold(key.id, token, usd, shared=False)

    def _add_locally(self, key_id: str, usd: float) -> float:
        self._spent[key_id] = self._spent.get(key_id, 0.0) + usd
        return self._spent[key_id]

    async def _local_view(self, key_id: str) -> float:
        return self._last_shared.get(key_id, 0.0) + self._spent.get(key_id, 0.0)


def _spent_key(key_id: str) -> str:
    return f"kit-budget:{key_id}"


def _holds_key(key_id: str) -> str:
    return f"kit-holds:{key_id}"


def _over_budget(key: ApiKey, spent: float, held: float, usd: float) -> BudgetExceeded:
    budget = key.budget_usd or 0.0
    in_flight = f" (${held:.4f} of it held by requests in flight)" if held > 0 else ""
    return BudgetExceeded(
        f"Key {key.id!r} has ${max(0.0, budget - spent - held):.4f} left of its ${budget:.4f} "
        f"budget{in_flight}, and this request could cost up to ${usd:.4f}. Ask for fewer tokens "
        "(max_tokens), wait for requests in flight, raise budget_usd for this key in the keys "
        "file, or use another key."
    )


def _too_many(key: ApiKey, limit: int) -> ConcurrencyLimited:
    return ConcurrencyLimited(
        f"Key {key.id!r} already has {limit} requests in flight, its limit. Wait for one to "
        "finish (Retry-After), or ask for a higher max_concurrent."
    )
