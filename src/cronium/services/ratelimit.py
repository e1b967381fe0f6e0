"""Rate limits. In-process sliding windows now; the Valkey implementation shares this interface."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class RateLimiter(Protocol):
    def retry_after_s(self, key: str, *, limit: int, window_s: float) -> int | None:
        """Seconds until `key` may act again, or None if it is under its limit."""

    def hit(self, key: str, *, window_s: float) -> None:
        """Record one action for `key`."""

    def reset(self, key: str) -> None: ...


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

    def retry_after_s(self, key: str, *, limit: int, window_s: float) -> int | None:
        hits = self._window(key, window_s)
        if len(hits) < limit:
            return None
        oldest_relevant = hits[len(hits) - limit]
        return max(1, math.ceil(oldest_relevant + window_s - self._clock()))

    def hit(self, key: str, *, window_s: float) -> None:
        self._window(key, window_s).append(self._clock())

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)
