"""Closed-loop HTTP load for bench/api_load.py: N workers share one keep-alive pool and each
sends its next request as soon as the previous one is answered.

A closed loop measures what a fixed number of busy clients get: throughput and latency are
tied by Little's law (mean latency ≈ workers / requests per second), so a slow endpoint
shows as both. Every request is timed from send to the last body byte; an answer with
another status than the one expected, or a transport error, is an error.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from common import rounded, summarize


@dataclass(frozen=True)
class Call:
    """One request: `label` groups it in the figures (the route, not the filled-in URL)."""

    label: str
    method: str
    url: str
    headers: dict[str, str]
    json: Any = None
    expect: int = 200


# The next request of worker `index`, drawn with that worker's own random generator.
CallSource = Callable[[random.Random, int], Call]


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies_ms.values())

    def all_ms(self) -> list[float]:
        return [ms for values in self.latencies_ms.values() for ms in values]

    def merge(self, other: LoadResult) -> LoadResult:
        merged = LoadResult(self.seconds + other.seconds)
        for source in (self, other):
            for label, values in source.latencies_ms.items():
                merged.latencies_ms[label].extend(values)
            merged.errors.update(source.errors)
        return merged

    def figures(self) -> dict[str, Any]:
        """Requests/s, latency percentiles and errors, overall and per label."""
        stats = summarize(self.all_ms())
        per_label = {}
        for label, values in sorted(self.latencies_ms.items()):
            one = summarize(values)
            per_label[label] = {
                "requests": len(values),
                "p50_ms": one.get("p50_ms"),
                "p99_ms": one.get("p99_ms"),
                "max_ms": one.get("max_ms"),
            }
        return {
            "requests": self.requests,
            "seconds": rounded(self.seconds),
            "requests_per_s": rounded(self.requests / self.seconds, 1) if self.seconds else None,
            "p50_ms": stats.get("p50_ms"),
            "p95_ms": stats.get("p95_ms"),
            "p99_ms": stats.get("p99_ms"),
            "max_ms": stats.get("max_ms"),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors.most_common(10)),
            "by_endpoint": per_label,
        }


async def hammer(
    client: httpx.AsyncClient, source: CallSource, *, workers: int, seconds: float, seed: int = 1
) -> LoadResult:
    """Run `workers` closed-loop clients for `seconds`; requests in flight at the end finish
    and count (the elapsed time includes them)."""
    result = LoadResult(0.0)
    deadline = time.monotonic() + seconds

    async def worker(index: int) -> None:
        rng = random.Random(seed * 10_000 + index)
        while time.monotonic() < deadline:
            call = source(rng, index)
            started = time.perf_counter()
            try:
                response = await client.request(
                    call.method, call.url, headers=call.headers, json=call.json
                )
                error = None
                if response.status_code != call.expect:
                    error = f"{response.status_code} {call.label}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__} {call.label}"
            result.latencies_ms[call.label].append(1000 * (time.perf_counter() - started))
            if error is not None:
                result.errors[error] += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    result.seconds = time.monotonic() - started
    return result


def client_for(base_url: str, workers: int) -> httpx.AsyncClient:
    """One pool with a connection per worker, kept alive; generous timeouts (a timeout is
    an error in the figures, not a hang)."""
    return httpx.AsyncClient(
        base_url=base_url,
        limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
        timeout=httpx.Timeout(30.0),
    )
