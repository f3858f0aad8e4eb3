"""The exact-match response cache, and single flight for identical requests in progress.

Key: a SHA-256 of the caller's tenant and the normalised request: the model alias plus every
parameter that changes the answer, in a canonical JSON form (sorted keys), so
`{"temperature": 0, "model": "x"}` and `{"model": "x", "temperature": 0.0}` share an entry.
`stream` and `user` are left out: they do not change the answer. Only deterministic requests
(temperature 0) are cached by default; a sampled answer is meant to vary. A client skips the
cache with `Cache-Control: no-cache`.

Why the tenant is in the key: without it, one key is served answers another key paid for, and
can learn what others asked by sending a guess and reading `x-kit-cache: hit`. Keys of one
tenant share entries (src/kit/gateway/auth.py); each key is its own tenant by default.

Entries live in this process (a TTL + LRU map) or in Redis when `REDIS_URL` is set, where every
replica shares them. While Redis is unreachable, the Redis cache uses this replica's memory
instead (see `redis_health.py`): fewer hits, never an error.

Single flight: when a burst of identical cacheable requests of one tenant arrives before the first
is answered, only the first goes upstream; the others wait for its answer. A burst costs one
upstream call.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson
from cachetools import TTLCache

if TYPE_CHECKING:
    from kit.gateway.redis_health import RedisLink

T = TypeVar("T")

# Parameters that do not change the answer, so are not part of the key.
_NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "metadata"})


def cache_key(tenant: str, alias: str, body: dict[str, Any]) -> str:
    normalised = {k: v for k, v in body.items() if k not in _NOT_IN_KEY and v is not None}
    normalised["model"] = alias
    normalised[" tenant"] = tenant  # a name no request field can have
    if "temperature" in normalised:
        normalised["temperature"] = float(normalised["temperature"])
    return hashlib.sha256(orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)).hexdigest()


def is_cacheable(body: dict[str, Any], nondeterministic_too: bool) -> bool:
    temperature = body.get("temperature")
    deterministic = temperature is not None and float(temperature) == 0.0
    return deterministic or nondeterministic_too


class CacheBackend(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, value: dict[str, Any]) -> None: ...

    async def aclose(self) -> None: ...


class MemoryCache:
    def __init__(self, ttl_s: int, max_entries: int) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(maxsize=max_entries, ttl=ttl_s)

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = self._entries.get(key)
        return None if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        # Stored as bytes: a cached dict handed out twice must not be mutated by either caller.
        self._entries[key] = orjson.dumps(value)

    async def aclose(self) -> None:
        self._entries.clear()


class RedisCache:
    """Entries in Redis, shared by every replica; in `fallback` while Redis is down.

    Entries written to memory during an outage stay there (and expire): copying them to Redis
    afterwards would buy a few hits at the price of code that runs only after an outage.
    """

    def __init__(self, link: RedisLink, ttl_s: int, fallback: MemoryCache) -> None:
        self._link = link
        self._ttl = ttl_s
        self._fallback = fallback

    async def get(self, key: str) -> dict[str, Any] | None:
        async def shared() -> dict[str, Any] | None:
            raw = await self._link.client.get(f"kit-cache:{key}")
            return None if raw is None else orjson.loads(raw)

        return await self._link.run(shared, lambda: self._fallback.get(key))

    async def set(self, key: str, value: dict[str, Any]) -> None:
        async def shared() -> None:
            await self._link.client.set(f"kit-cache:{key}", orjson.dumps(value), ex=self._ttl)

        await self._link.run(shared, lambda: self._fallback.set(key, value))

    async def aclose(self) -> None:
        """The link is closed by its owner (the app's lifespan): limits and budgets share it."""
        await self._fallback.aclose()


class SingleFlight:
    """Run `work` once per key at a time; concurrent callers with the same key share its result.

    The work runs as its own task, so a caller that goes away (a client disconnects) does not
    cancel the upstream call that the other callers are waiting for.
    """

    def __init__(self) -> None:
        self._in_flight: dict[str, asyncio.Future[Any]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Returns (result, shared): shared is True for callers that waited on another's call."""
        existing = self._in_flight.get(key)
        if existing is not None:
            return await asyncio.shield(existing), True
        task: asyncio.Future[T] = asyncio.ensure_future(work())
        self._in_flight[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task), False

    def _finished(self, key: str, task: asyncio.Future[Any]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody awaited is not reported twice
