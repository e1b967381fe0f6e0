"""Prometheus metrics: one registry per process, every name prefixed `cronium_`.

The engine increments these where events happen (worker, scheduler, recovery, log sink,
Runtime API). Queue depth and oldest queued age are read at scrape time with one cheap
query, cached for a few seconds and bounded by a short timeout: a scrape never waits on a
slow database. Valkey state is the link's own (core.valkey), read without any I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import asyncpg
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("cronium.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Scrape-time readings are cached this long and may take at most this long.
SCRAPE_CACHE_S = 5.0
SCRAPE_TIMEOUT_S = 1.0

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30)

RUNS = Counter(
    "cronium_runs_total",
    "Executions finished by the engine, by final status.",
    ["status"],
    registry=REGISTRY,
)
JOBS = Counter(
    "cronium_jobs_total",
    "Job attempts concluded by a worker, by result status and executor mode.",
    ["status", "executor"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "cronium_job_duration_seconds",
    "Wall time of one job attempt on a worker (load, run, logs, result).",
    ["status", "executor"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
SCHEDULE_LAG = Histogram(
    "cronium_schedule_lag_seconds",
    "Delay between a scheduled fire time and the scheduler creating its execution.",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
WORKER_SLOTS_BUSY = Gauge(
    "cronium_worker_slots_busy",
    "Job slots of this process's workers running a job now.",
    registry=REGISTRY,
)
WORKER_SLOTS = Gauge(
    "cronium_worker_slots",
    "Job slots of this process's workers (CRONIUM_WORKER_CONCURRENCY per worker).",
    registry=REGISTRY,
)
LEASE_EXPIRIES = Counter(
    "cronium_lease_expiries_total",
    "Running jobs whose lease expired (node lost), by what recovery did with them.",
    ["outcome"],
    registry=REGISTRY,
)
RUNTIME_REQUESTS = Counter(
    "cronium_runtime_api_requests_total",
    "Runtime API requests from running scripts, by endpoint and HTTP status.",
    ["endpoint", "status"],
    registry=REGISTRY,
)
RUNTIME_LATENCY = Histogram(
    "cronium_runtime_api_request_duration_seconds",
    "Runtime API request latency, by endpoint.",
    ["endpoint"],
    buckets=_API_BUCKETS,
    registry=REGISTRY,
)
LOG_BYTES = Counter(
    "cronium_log_bytes_total",
    "Bytes of job output and system log lines stored (UTF-8, counted per flushed batch).",
    registry=REGISTRY,
)
LOG_LINES = Counter(
    "cronium_log_lines_total",
    "Job log lines stored.",
    registry=REGISTRY,
)


# -- engine hooks ---------------------------------------------------------------------------


class _Settled(Protocol):
    @property
    def status(self) -> Enum: ...


def run_settled(finished: _Settled | None) -> None:
    """An execution reached its final status (None: it has not, nothing to count)."""
    if finished is not None:
        RUNS.labels(finished.status.value).inc()


def job_concluded(status: str, executor: str, duration_s: float) -> None:
    JOBS.labels(status, executor).inc()
    JOB_DURATION.labels(status, executor).observe(duration_s)


def logs_stored(lines: Iterable[tuple[str, object, str]]) -> None:
    """One call per flushed batch."""
    count = size = 0
    for _stream, _at, text in lines:
        count += 1
        size += len(text.encode()) + 1
    LOG_LINES.inc(count)
    LOG_BYTES.inc(size)


# -- Runtime API ----------------------------------------------------------------------------

RUNTIME_PREFIX = "/runtime/"


async def observe_runtime(
    app: ASGIApp, endpoint: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one Runtime API request through `app`, counting it and timing it."""
    status = 500
    started = time.perf_counter()

    async def send_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    try:
        await app(scope, receive, send_status)
    finally:
        RUNTIME_LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        RUNTIME_REQUESTS.labels(endpoint, str(status)).inc()


# -- scrape-time readings -------------------------------------------------------------------

QUEUE_SQL = """SELECT count(*) AS depth,
       count(*) FILTER (WHERE run_after <= now()) AS ready,
       coalesce(extract(epoch FROM now() - min(run_after) FILTER (WHERE run_after <= now())), 0)
           AS oldest_s
FROM jobs WHERE status = 'queued'"""


@dataclass
class _Reading:
    pool: object = None
    at: float = float("-inf")
    depth: float | None = None
    ready: float | None = None
    oldest_s: float | None = None


class _ScrapeCollector(Collector):
    """Yields the last reading; `refresh` (awaited by the /metrics route) updates it."""

    def __init__(self) -> None:
        self.reading = _Reading()
        self.valkey_state = "absent"
        self._lock = asyncio.Lock()

    def collect(self) -> Iterable[Metric]:
        r = self.reading
        if r.depth is not None:
            yield GaugeMetricFamily(
                "cronium_queue_depth", "Jobs queued (including delayed retries).", value=r.depth
            )
        if r.ready is not None:
            yield GaugeMetricFamily(
                "cronium_queue_ready", "Queued jobs whose start time has come.", value=r.ready
            )
        if r.oldest_s is not None:
            yield GaugeMetricFamily(
                "cronium_queue_oldest_age_seconds",
                "How long the oldest ready queued job has waited (0 when none).",
                value=r.oldest_s,
            )
        if self.valkey_state != "absent":
            yield GaugeMetricFamily(
                "cronium_valkey_up",
                "1 when the configured Valkey answers, 0 when not; absent without VALKEY_URL.",
                value=1.0 if self.valkey_state == "ok" else 0.0,
            )
        up = r.depth is not None
        yield GaugeMetricFamily(
            "cronium_database_up",
            "1 when the last scrape-time queue query succeeded.",
            value=1.0 if up else 0.0,
        )

    async def refresh(self, pool: asyncpg.Pool) -> None:
        async with self._lock:
            now = time.monotonic()
            last = self.reading
            fresh = now - last.at < SCRAPE_CACHE_S
            if fresh and last.pool is pool:
                return
            reading = _Reading(pool=pool, at=now)
            row = None
            try:
                async with asyncio.timeout(SCRAPE_TIMEOUT_S):
                    async with pool.acquire() as conn:
                        row = await conn.fetchrow(QUEUE_SQL, timeout=SCRAPE_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("metrics: queue query failed: %s", exc)
            if row is not None:
                reading.depth = float(row["depth"])
                reading.ready = float(row["ready"])
                reading.oldest_s = float(row["oldest_s"])
            self.reading = reading


SCRAPE = _ScrapeCollector()
REGISTRY.register(SCRAPE)


async def render(pool: asyncpg.Pool | None, valkey_state: str) -> bytes:
    """The exposition text for this process, after a (cached) scrape-time refresh.

    `valkey_state` is the Valkey link's: "ok", "error", or "absent" (VALKEY_URL unset).
    """
    SCRAPE.valkey_state = valkey_state
    if pool is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(SCRAPE.refresh(pool), timeout=SCRAPE_TIMEOUT_S * 2)
    return generate_latest(REGISTRY)
