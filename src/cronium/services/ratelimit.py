"""Rate limits: sliding windows, in process or shared by every node through Valkey.

The methods are coroutines so the Valkey limiter can ask the server; the memory limiter
answers at once. Both count the same way: at most `limit` hits in any `window_s` seconds.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cronium.services.valkey import ValkeyLink


class RateLimiter(Protocol):
    async def retry_after_s(self, key: str, *, limit: int, window_s: float) -> int | None:
        """Seconds until `key` may act again, or None if it is under its limit."""

    async def hit(self, key: str, *, window_s: float) -> None:
        """Record one action for `key`."""

    async def reset(self, key: str) -> None: ...


class MemoryRateLimiter:
    """Sliding-window log per key; bounded because old entries fall out on every look."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    def _window(self, key: str, window_s: float) -> deque[float]:
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._evict(now, window_s)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        return hits

    def _evict(self, now: float, window_s: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - window_s]:
            del self._hits[key]

    def check(self, key: str, *, limit: int, window_s: float) -> int | None:
        hits = self._window(key, window_s)
        if len(hits) < limit:
            return None
        oldest_relevant = hits[len(hits) - limit]
        return max(1, math.ceil(oldest_relevant + window_s - self._clock()))

    def record(self, key: str, *, window_s: float) -> None:
        self._window(key, window_s).append(self._clock())

    def forget(self, key: str) -> None:
        self._hits.pop(key, None)

    async def retry_after_s(self, key: str, *, limit: int, window_s: float) -> int | None:
        return self.check(key, limit=limit, window_s=window_s)

    async def hit(self, key: str, *, window_s: float) -> None:
        self.record(key, window_s=window_s)

    async def reset(self, key: str) -> None:
        self.forget(key)


class ValkeyRateLimiter:
    """The same sliding window as a sorted set per key in Valkey, shared by every node.

    Every hit is also counted in process, so when Valkey fails (or is not back yet) the
    limits keep holding per process instead of lapsing; no request fails because of Valkey.
    Timestamps are wall-clock seconds: nodes are assumed to keep their clocks in sync.
    """

    PREFIX = "cronium:rl:"

    def __init__(
        self,
        link: ValkeyLink,
        fallback: MemoryRateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._link = link
        self._memory = fallback or MemoryRateLimiter()
        self._clock = clock
        self._ids = itertools.count()
        self._me = secrets.token_hex(4)

    async def retry_after_s(self, key: str, *, limit: int, window_s: float) -> int | None:
        client = self._link.client
        if client is not None and self._link.usable:
            now = self._clock()
            name = self.PREFIX + key
            try:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.zremrangebyscore(name, "-inf", now - window_s)
                    pipe.zcard(name)
                    pipe.zrange(name, -limit, -limit, withscores=True)
                    _, count, oldest = await pipe.execute()
            except Exception as exc:  # Valkey is optional: fall back, never fail the request
                self._link.down(exc)
            else:
                if int(count) < limit or not oldest:
                    return None
                return max(1, math.ceil(float(oldest[0][1]) + window_s - now))
        return self._memory.check(key, limit=limit, window_s=window_s)

    async def hit(self, key: str, *, window_s: float) -> None:
        self._memory.record(key, window_s=window_s)
        client = self._link.client
        if client is None or not self._link.usable:
            return
        now = self._clock()
        name = self.PREFIX + key
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.zadd(name, {f"{now:.6f}:{self._me}:{next(self._ids)}": now})
                pipe.pexpire(name, math.ceil(window_s * 1000) + 1000)
                await pipe.execute()
        except Exception as exc:
            self._link.down(exc)

    async def reset(self, key: str) -> None:
        self._memory.forget(key)
        client = self._link.client
        if client is None or not self._link.usable:
            return
        try:
            await client.delete(self.PREFIX + key)
        except Exception as exc:
            self._link.down(exc)
