"""Schedule fire → process start lag with 1,000 active cron schedules (local executor).

Target (2 cores): p50 ≤ 20 ms, p99 ≤ 100 ms.

1,000 active Bash events with six-field cron expressions (seconds first), event i firing
once a minute at second ⌊i·60/1000⌋: about 17 fires every second, spread evenly over the
minute. Each prints `$EPOCHREALTIME` (bash ≥ 5: epoch with microseconds) as its first act.
A Node (scheduler + worker, local executor) runs for --seconds; then

    lag = first printed EPOCHREALTIME - executions.scheduled_for

for every fired execution, split into its stages from the database's timestamps (same
host, same clock; PostgreSQL's now() is the statement's transaction start):

    fire → enqueued   executions.created_at - scheduled_for   (scheduler wake-up + queue)
    enqueued → claimed  jobs.started_at - executions.created_at  (commit, NOTIFY, claim)
    claimed → printed   EPOCHREALTIME - jobs.started_at  (load job, spawn bash, bash start)

and the scheduler's own record, schedule_fires.lag_ms (tick start - fire time).

Usage: python bench/schedule_lag.py [--seconds 70] [--schedules 1000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CpuMeter,
    DbCpuMeter,
    bench_core,
    cpu_per_job,
    create_user,
    fresh_database,
    machine_info,
    rounded,
    run_main,
    running_node,
    say,
    setup_logging,
    summarize,
)

from cronium.domain.schedules import next_fires

TARGET_P50_MS = 20.0
TARGET_P99_MS = 100.0
CONTENT = "echo $EPOCHREALTIME"
# Fires scheduled this close to the node's stop are not expected to have run.
TAIL_S = 3.0


def cron_for(index: int, count: int) -> str:
    return f"{index * 60 // count} * * * * *"


async def create_schedules(
    conn: asyncpg.Connection, owner: int, count: int, first: datetime, spread: str = "second"
) -> None:
    if spread == "even":
        await create_even_schedules(conn, owner, count, first)
        return
    rows = []
    for i in range(count):
        cron = cron_for(i, count)
        next_fire = next_fires(cron, "UTC", first, count=1)[0]
        rows.append((owner, f"lag-{i:04d}", CONTENT, cron, next_fire))
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO events (owner_id, name, type, language, content, status,
                                   schedule_kind, cron, timezone, next_fire_at)
               VALUES ($1, $2, 'script', 'bash', $3, 'active', 'cron', $4, 'UTC', $5)""",
            rows,
        )


async def create_even_schedules(
    conn: asyncpg.Connection, owner: int, count: int, first: datetime
) -> None:
    """Every event once a minute (interval 60 s), starts spread evenly: one fire every
    60/count seconds instead of count/60 fires at each whole second."""
    rows = []
    for i in range(count):
        start = first + timedelta(seconds=60 * i / count)
        rows.append((owner, f"lag-{i:04d}", CONTENT, start))
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO events (owner_id, name, type, language, content, status,
                                   schedule_kind, interval_seconds, start_at, timezone,
                                   next_fire_at)
               VALUES ($1, $2, 'script', 'bash', $3, 'active', 'interval', 60, $4, 'UTC', $4)""",
            rows,
        )


async def collect(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT x.id, x.scheduled_for, x.created_at, x.status::text AS status,
               j.started_at AS claimed_at, f.lag_ms,
               (SELECT l.line FROM log_lines l
                WHERE l.execution_id = x.id AND l.stream = 'stdout'
                ORDER BY l.seq LIMIT 1) AS first_line
        FROM executions x
        JOIN jobs j ON j.execution_id = x.id
        LEFT JOIN schedule_fires f ON f.execution_id = x.id
        WHERE x.scheduled_for IS NOT NULL
        ORDER BY x.scheduled_for
        """
    )


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


def analyse(rows: list[asyncpg.Record], steady_from: datetime, stop_at: datetime) -> dict[str, Any]:
    total, to_enqueue, to_claim, to_print, scheduler = [], [], [], [], []
    warmup_total: list[float] = []
    missing = 0
    for r in rows:
        if r["scheduled_for"] > stop_at - timedelta(seconds=TAIL_S):
            continue
        if r["first_line"] is None or r["claimed_at"] is None:
            missing += 1
            continue
        try:
            printed = float(r["first_line"].strip())
        except ValueError:
            missing += 1
            continue
        fire = r["scheduled_for"].timestamp()
        lag = (printed - fire) * 1000
        if r["scheduled_for"] < steady_from:
            warmup_total.append(lag)
            continue
        total.append(lag)
        to_enqueue.append(_ms(r["created_at"] - r["scheduled_for"]))
        to_claim.append(_ms(r["claimed_at"] - r["created_at"]))
        to_print.append((printed - r["claimed_at"].timestamp()) * 1000)
        if r["lag_ms"] is not None:
            scheduler.append(float(r["lag_ms"]))
    return {
        "total": summarize(total),
        "stages": {
            "fire_to_enqueued": summarize(to_enqueue),
            "enqueued_to_claimed": summarize(to_claim),
            "claimed_to_printed": summarize(to_print),
        },
        "scheduler_lag_ms_column": summarize(scheduler),
        "warmup": summarize(warmup_total),
        "missing": missing,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    machine = await machine_info()
    async with (
        fresh_database("lag") as (name, url),
        bench_core(url, CRONIUM_WORKER_CONCURRENCY=args.concurrency) as core,
    ):
        async with core.db.acquire() as conn:
            owner = await create_user(conn)
            first = datetime.now(UTC) + timedelta(seconds=args.lead)
            await create_schedules(conn, owner, args.schedules, first, args.spread)
        say(f"{args.schedules} schedules active; first fires from {first:%H:%M:%S}")
        async with running_node(core, ("scheduler", "worker")):
            db_meter = await DbCpuMeter(name).start()
            meter = CpuMeter()
            started = datetime.now(UTC)
            say(f"node running (concurrency {args.concurrency}) for {args.seconds:g} s")
            await asyncio.sleep(args.seconds)
            stop_at = datetime.now(UTC)
            cpu = meter.stop()
            db_cpu = await db_meter.stop()
        async with core.db.acquire() as conn:
            rows = await collect(conn)
            outcomes = dict(
                await conn.fetch("SELECT outcome::text, count(*) FROM schedule_fires GROUP BY 1")
            )
            statuses = dict(
                await conn.fetch("SELECT status::text, count(*) FROM executions GROUP BY 1")
            )
            lost = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE error LIKE '%stopped renewing its lease%'"
            )
    steady_from = max(started, first) + timedelta(seconds=args.warmup)
    figures = analyse(rows, steady_from, stop_at)
    total = figures["total"]
    p50, p99 = total.get("p50_ms"), total.get("p99_ms")
    return {
        "benchmark": "schedule_lag",
        "schedules": args.schedules,
        "spread": args.spread,
        "fires_per_s": rounded(args.schedules / 60, 1),
        "worker_concurrency": args.concurrency,
        "run_s": args.seconds,
        "fires": len(rows),
        "measured": total.get("count", 0),
        "p50_ms": p50,
        "p90_ms": total.get("p90_ms"),
        "p99_ms": p99,
        "max_ms": total.get("max_ms"),
        "target_p50_ms": TARGET_P50_MS,
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": p50 is not None
        and p99 is not None
        and p50 <= TARGET_P50_MS
        and p99 <= TARGET_P99_MS,
        "scheduler_lag": figures["scheduler_lag_ms_column"],
        "stages": figures["stages"],
        "warmup_excluded": {"seconds": args.warmup, **figures["warmup"]},
        "missing_output": figures["missing"],
        "fire_outcomes": outcomes,
        "execution_statuses": statuses,
        "failed_by_lease_recovery": lost,
        "cpu": cpu,
        "postgres_backends_cpu_s": db_cpu,
        "cpu_per_fire": cpu_per_job(cpu, db_cpu, len(rows)),
        "machine": machine,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=70.0, help="how long the node runs")
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument(
        "--spread",
        choices=("second", "even"),
        default="second",
        help="second: the fires of each second at once (cron); even: one every 60 ms",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="CRONIUM_WORKER_CONCURRENCY")
    parser.add_argument("--warmup", type=float, default=5.0, help="first seconds not counted")
    parser.add_argument("--lead", type=float, default=3.0, help="first fire after setup + lead")
    parser.add_argument("--verbose", action="store_true", help="Cronium's INFO logs on stderr")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    setup_logging(arguments.verbose)
    run_main(lambda: main(arguments), budget_s=arguments.seconds + 180)
