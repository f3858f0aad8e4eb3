"""Redis as a dependency that can fail: one client, whether it answers, and what to do when not.

Cache, rate limits and budgets reach Redis through `RedisLink.run(shared, local)`: `shared` uses
Redis; when Redis cannot be reached, `local` (this replica's memory) answers instead, the link is
marked down, and a background probe pings Redis with back-off until it answers again. The link
knows nothing about what is stored; cache.py and limits.py decide what "local" means for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kit.core.logging import get_logger

log = get_logger("gateway")

T = TypeVar("T")

# What "Redis is unreachable" looks like. Not every RedisError: a wrong command is a bug to see,
# not an outage to hide. BusyLoadingError (Redis reloading its data) is a ConnectionError.
UNREACHABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisLink:
    """The gateway's Redis client, with a state: up (use Redis) or down (use memory, probe).

    Redis on the same network answers in about a millisecond, so `timeout_s` is short: while
    Redis is silent (a network partition rather than a refused connection), each request that
    is already talking to it waits at most that long before the link goes down. Once it is
    down, requests do not touch Redis at all until a probe has seen it answer.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.5,
        first_probe_s: float = 0.25,
        max_probe_s: float = 4.0,
        on_change: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # One immediate retry: it reopens a pooled connection that a restarted Redis closed.
            # redis-py's default (3 retries, back-off up to seconds) would stall each request.
            retry=Retry(NoBackoff(), 1),
        )
        self.up = True  # until a call or the start-up check finds otherwise
        self.reason = ""  # why it is down, for /readyz and the logs
        self.first_probe_s = first_probe_s
        self.max_probe_s = max_probe_s
        self._on_change = on_change
        self._recovery_hooks: list[Callable[[], Awaitable[None]]] = []
        self._down_since = 0.0
        self._probing: asyncio.Task[None] | None = None
        on_change(True)

    @property
    def status(self) -> str:
        """For /readyz: `ready`, or `degraded (why)`."""
        return "ready" if self.up else f"degraded ({self.reason})"

    def on_recovery(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` when Redis answers again, before requests use it; if the hook fails with
        Redis unreachable, Redis counts as still down and the hook runs again on the next probe."""
        self._recovery_hooks.append(hook)

    async def run(self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        """`shared()` while Redis is up; `local()` while it is down or `shared` finds it down."""
        if self.up:
            try:
                return await shared()
            except UNREACHABLE as exc:
                self._mark_down(exc)
        return await local()

    async def check(self) -> str:
        """Ping Redis now if it is thought up (the readiness probe), and return `status`.

        Without it, an idle gateway would not notice that Redis went away."""
        if self.up:
            try:
                await self.client.ping()
            except UNREACHABLE as exc:
                self._mark_down(exc)
        return self.status

    async def aclose(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
        await self.client.aclose()

    def _mark_down(self, exc: Exception) -> None:
        self.reason = _describe(exc)
        if not self.up:
            return  # many requests fail at once when Redis goes: one log line, one probe
        self.up = False
        self._down_since = time.monotonic()
        self._on_change(False)
        log.warning(
            "redis_degraded",
            reason=self.reason,
            serving="cache, rate limits and budgets in this replica's memory until Redis returns",
        )
        self._probing = asyncio.create_task(self._probe_until_up())

    async def _probe_until_up(self) -> None:
        """Ping with doubling waits (0.25 s, 0.5 s, ... at most `max_probe_s`), then recover."""
        wait = self.first_probe_s
        while True:
            await asyncio.sleep(wait)
            try:
                await self.client.ping()
                for hook in self._recovery_hooks:
                    await hook()
            except UNREACHABLE as exc:
                self.reason = _describe(exc)
            except Exception:  # a bug in a hook must not end the probing and leave us degraded
                log.exception("redis_recovery_hook_failed")
            else:
                break
            wait = min(wait * 2, self.max_probe_s)
        # No await between the hooks' last write and here: no request can slip into memory
        # after the hooks have handed memory's counts back to Redis.
        self.up = True
        self._on_change(True)
        log.info("redis_recovered", down_s=round(time.monotonic() - self._down_since, 1))


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
