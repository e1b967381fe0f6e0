"""Rate-limit check and live-log wake-up latency, in process vs through Valkey.

Prints its figures as one JSON line (the last), like the other benchmarks.

    .venv/bin/python bench/valkey_latency.py [--url redis://127.0.0.1:6379/0] [--n 2000]

A rate-limit check is what every login, webhook and Runtime API call pays: one
`retry_after_s` plus one `hit`. A wake-up is the time from one hub's `publish` to a
subscriber's event being set: on the same hub in process, on a second hub through Valkey.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

from cronium.logs.hub import LiveHub, ValkeyHub
from cronium.services.ratelimit import MemoryRateLimiter, RateLimiter, ValkeyRateLimiter
from cronium.services.valkey import ValkeyLink


def summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_us": round(statistics.median(samples) * 1e6, 1),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1] * 1e6, 1),
    }


async def limiter_latency(limiter: RateLimiter, n: int) -> dict[str, float]:
    samples = []
    for i in range(n):
        key = f"bench:{i % 50}"
        start = time.perf_counter()
        if await limiter.retry_after_s(key, limit=1_000_000, window_s=1.0) is None:
            await limiter.hit(key, window_s=1.0)
        samples.append(time.perf_counter() - start)
    return summary(samples)


async def wake_latency(source: LiveHub, target: LiveHub, n: int) -> dict[str, float]:
    samples = []
    for i in range(n):
        event = target.subscribe(i)
        start = time.perf_counter()
        source.publish(i)
        await asyncio.wait_for(event.wait(), timeout=5)
        samples.append(time.perf_counter() - start)
        target.unsubscribe(i, event)
    return summary(samples)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    load = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, object] = {
        "benchmark": "valkey_latency",
        "n": args.n,
        "machine": {"loadavg_at_start": load},
    }
    memory_hub = LiveHub()
    result["memory"] = {
        "rate_limit_check": await limiter_latency(MemoryRateLimiter(), args.n),
        "wake_same_node": await wake_latency(memory_hub, memory_hub, args.n),
    }
    a, b = ValkeyLink(args.url), ValkeyLink(args.url)
    await a.start()
    await b.start()
    if not (a.usable and b.usable):
        result["valkey"] = {"error": a.reason}
    else:
        hub_a, hub_b = ValkeyHub(a, "bench-a"), ValkeyHub(b, "bench-b")
        await hub_a.start()
        await hub_b.start()
        await asyncio.sleep(0.3)  # subscriptions active
        result["valkey"] = {
            "rate_limit_check": await limiter_latency(ValkeyRateLimiter(a), args.n),
            "wake_other_node": await wake_latency(hub_a, hub_b, args.n),
        }
        await hub_a.close()
        await hub_b.close()
    await a.close()
    await b.close()
    print(json.dumps(result, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
