"""Trivial Bash jobs per second through the queue with the local executor.

Target (2 cores): ≥ 150 jobs/s.

For each worker concurrency (default 8 and 16), on a fresh set of tables:

- drain: --jobs executions of a `true` Bash event are enqueued in one transaction before a
  worker node starts; throughput = jobs / (last job finished - first job claimed), from the
  jobs' own timestamps.
- steady: --producers concurrent producers enqueue at --rate executions/s in total for
  --produce-seconds (one transaction each, as POST /events/{id}/run does) while the node
  runs; reported: the rate the producers achieved, completions/s from first enqueue to
  last finish, and the enqueue → finish latency. When the engine cannot keep up, the
  backlog grows and the latency shows it.

The producers run in the node's process and event loop (as the API does in
`cronium serve`), so their cost is part of the figure.

Per-job CPU (Cronium process, job scripts, PostgreSQL backends) is reported with the
throughput it allows at best: unlike latencies, it barely depends on other load.

Usage: python bench/queue_throughput.py [--jobs 1500] [--concurrency 8,16] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PG_ADMIN_URL,
    CpuMeter,
    DbCpuMeter,
    PgWireCounter,
    bench_core,
    cpu_per_job,
    create_script_event,
    create_user,
    fresh_database,
    machine_info,
    manual_run,
    proxied_url,
    rounded,
    run_main,
    running_node,
    say,
    setup_logging,
    summarize,
)

from cronium.core import Core, _init_connection
from cronium.db.session import asyncpg_dsn
from cronium.engine import queue

TARGET_JOBS_PER_S = 150.0
OPEN = "('waiting', 'queued', 'running')"
# A job failed by lease recovery although its node was alive (see the report).
LOST = "coalesce(j.error LIKE '%stopped renewing its lease%', false)"


async def reset_tables(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE log_lines, jobs, executions CASCADE")
    await conn.execute("ANALYZE jobs")
    await conn.execute("ANALYZE executions")


async def wait_drained(conn: asyncpg.Connection, expected: int, timeout_s: float) -> int:
    """Wait until `expected` jobs are terminal; returns how many are."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = int(await conn.fetchval(f"SELECT count(*) FROM jobs WHERE status NOT IN {OPEN}"))
        if done >= expected or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.1)


async def job_figures(conn: asyncpg.Connection) -> dict[str, Any]:
    """Counts, time span and latencies of the jobs the worker itself finished.

    Jobs failed by lease recovery (their worker was alive, see the report) are counted
    apart: their finish time is the lease expiry, not the work, and would stretch the span.
    """
    row = await conn.fetchrow(
        f"""SELECT count(*) AS n,
                  count(*) FILTER (WHERE j.status = 'succeeded') AS ok,
                  count(*) FILTER (WHERE {LOST}) AS lost,
                  extract(epoch FROM min(j.started_at)) AS first_claim,
                  extract(epoch FROM max(j.finished_at) FILTER (WHERE NOT {LOST})) AS last_finish,
                  extract(epoch FROM min(x.created_at)) AS first_enqueue
           FROM jobs j JOIN executions x ON x.id = j.execution_id"""
    )
    latencies = await conn.fetch(
        f"""SELECT extract(epoch FROM j.finished_at - x.created_at) * 1000 AS total,
                  extract(epoch FROM j.started_at - x.created_at) * 1000 AS wait,
                  extract(epoch FROM j.finished_at - j.started_at) * 1000 AS run
           FROM jobs j JOIN executions x ON x.id = j.execution_id
           WHERE j.finished_at IS NOT NULL AND NOT {LOST}"""
    )
    return {
        "jobs": row["n"],
        "succeeded": row["ok"],
        "lost": row["lost"],
        "first_claim": float(row["first_claim"] or 0),
        "last_finish": float(row["last_finish"] or 0),
        "first_enqueue": float(row["first_enqueue"] or 0),
        "enqueue_to_finish": summarize(float(r["total"]) for r in latencies),
        "claim_to_finish": summarize(float(r["run"]) for r in latencies),
        "enqueue_to_claim": summarize(float(r["wait"]) for r in latencies),
    }


async def drain_run(
    core: Core, conn: asyncpg.Connection, event_id: int, owner: int, args: argparse.Namespace
) -> dict[str, Any]:
    database = str(await conn.fetchval("SELECT current_database()"))
    await reset_tables(conn)
    started = time.monotonic()
    async with conn.transaction():
        for _ in range(args.jobs):
            await queue.enqueue(conn, manual_run(event_id, owner))
    enqueue_s = time.monotonic() - started
    say(f"  drain: {args.jobs} jobs enqueued in {enqueue_s:.1f} s; starting the worker")
    async with running_node(core, ("worker",)):
        db_meter = await DbCpuMeter(database).start()
        meter = CpuMeter()
        done = await wait_drained(conn, args.jobs, args.timeout)
        cpu = meter.stop()
        db_cpu = await db_meter.stop()
    figures = await job_figures(conn)
    span = figures["last_finish"] - figures["first_claim"]
    by_worker = done - figures["lost"]
    return {
        "jobs": args.jobs,
        "finished": done,
        "succeeded": figures["succeeded"],
        "failed_by_lease_recovery": figures["lost"],
        "enqueue_one_transaction_s": round(enqueue_s, 2),
        "span_s": round(span, 2),
        "jobs_per_s": rounded(by_worker / span if span > 0 else None, 1),
        "claim_to_finish": figures["claim_to_finish"],
        "cpu": cpu,
        "postgres_backends_cpu_s": db_cpu,
        "cpu_per_job": cpu_per_job(cpu, db_cpu, done),
    }


async def steady_run(
    core: Core, conn: asyncpg.Connection, event_id: int, owner: int, args: argparse.Namespace
) -> dict[str, Any]:
    await reset_tables(conn)
    database = str(await conn.fetchval("SELECT current_database()"))
    async with running_node(core, ("worker",)):
        db_meter = await DbCpuMeter(database).start()
        meter = CpuMeter()
        loop = asyncio.get_running_loop()
        began = loop.time()
        end = began + args.produce_seconds
        produced = 0
        issued = 0

        async def producer(conn: asyncpg.Connection) -> None:
            # Shared schedule: enqueue number i is due at began + i / rate.
            nonlocal produced, issued
            while True:
                due_at = began + issued / args.rate
                if due_at >= end:
                    return
                issued += 1
                await asyncio.sleep(max(0.0, due_at - loop.time()))
                async with conn.transaction():
                    await queue.enqueue(conn, manual_run(event_id, owner))
                produced += 1

        # Own connections: the producers stand for API requests and must not be starved by,
        # or starve, the engine's pool.
        async with asyncpg.create_pool(
            asyncpg_dsn(core.engine.url.render_as_string(hide_password=False)),
            min_size=args.producers,
            max_size=args.producers,
            init=_init_connection,
        ) as pool:
            connections = [await pool.acquire() for _ in range(args.producers)]
            await asyncio.gather(*(producer(c) for c in connections))
            for c in connections:
                await pool.release(c)
        produce_s = loop.time() - began
        say(f"  steady: produced {produced} in {produce_s:.1f} s; draining")
        done = await wait_drained(conn, produced, args.timeout)
        cpu = meter.stop()
        db_cpu = await db_meter.stop()
    figures = await job_figures(conn)
    span = figures["last_finish"] - figures["first_enqueue"]
    by_worker = done - figures["lost"]
    return {
        "target_rate_per_s": args.rate,
        "produced": produced,
        "produced_per_s": rounded(produced / produce_s, 1),
        "producers": args.producers,
        "finished": done,
        "succeeded": figures["succeeded"],
        "failed_by_lease_recovery": figures["lost"],
        "span_s": round(span, 2),
        "jobs_per_s": rounded(by_worker / span if span > 0 else None, 1),
        "enqueue_to_finish": figures["enqueue_to_finish"],
        "enqueue_to_claim": figures["enqueue_to_claim"],
        "cpu": cpu,
        "postgres_backends_cpu_s": db_cpu,
        "cpu_per_job": cpu_per_job(cpu, db_cpu, done),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    machine = await machine_info()
    counter: PgWireCounter | None = None
    runs: list[dict[str, Any]] = []
    async with fresh_database("queue") as (_name, url):
        if args.wire:
            upstream = make_url(PG_ADMIN_URL)
            counter = PgWireCounter(upstream.host or "127.0.0.1", upstream.port or 5432)
            url = proxied_url(url, await counter.start())
        try:
            for concurrency in args.concurrency:
                say(f"worker concurrency {concurrency}")
                async with (
                    bench_core(url, CRONIUM_WORKER_CONCURRENCY=concurrency) as core,
                    core.db.acquire() as conn,
                ):
                    owner = await conn.fetchval(
                        "SELECT id FROM users LIMIT 1"
                    ) or await create_user(conn)
                    event_id = await conn.fetchval(
                        "SELECT id FROM events WHERE name = 'true'"
                    ) or await create_script_event(conn, owner, "true", "true")
                    run: dict[str, Any] = {"concurrency": concurrency}
                    before = counter.snapshot()[0] if counter else None
                    run["drain"] = await drain_run(core, conn, event_id, owner, args)
                    if counter is not None and before is not None:
                        used = PgWireCounter.statements(counter.snapshot()[0] - before)
                        run["drain"]["statements_per_job"] = round(used / args.jobs, 1)
                    if args.produce_seconds > 0:
                        run["steady"] = await steady_run(core, conn, event_id, owner, args)
                    say(
                        f"  → drain {run['drain']['jobs_per_s']} jobs/s"
                        + (
                            f", steady {run['steady']['jobs_per_s']} jobs/s"
                            if "steady" in run
                            else ""
                        )
                    )
                    runs.append(run)
        finally:
            if counter is not None:
                await counter.stop()
    best = max((r["drain"]["jobs_per_s"] or 0 for r in runs), default=0)
    return {
        "benchmark": "queue_throughput",
        "jobs_per_s": best,
        "jobs_per_s_by_concurrency": {
            str(r["concurrency"]): {
                "drain": r["drain"]["jobs_per_s"],
                "steady": r.get("steady", {}).get("jobs_per_s"),
                "cpu_ms_per_job": r["drain"]["cpu_per_job"].get("total_ms"),
                "ceiling_event_loop": r["drain"]["cpu_per_job"].get(
                    "ceiling_event_loop_jobs_per_s"
                ),
            }
            for r in runs
        },
        "target_jobs_per_s": TARGET_JOBS_PER_S,
        "meets_target": best >= TARGET_JOBS_PER_S,
        "through_wire_counter": bool(args.wire),
        "runs": runs,
        "machine": machine,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1500, help="jobs of the drain run")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[8, 16],
        help="comma-separated worker concurrencies",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="steady producer, jobs/s")
    parser.add_argument(
        "--produce-seconds", type=float, default=10.0, help="steady run length (0: skip)"
    )
    parser.add_argument(
        "--producers", type=int, default=4, help="concurrent producers of the steady run"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="max wait for a drain")
    parser.add_argument(
        "--wire", action="store_true", help="count statements per job (through a proxy: slower)"
    )
    parser.add_argument("--verbose", action="store_true", help="Cronium's INFO logs on stderr")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    setup_logging(arguments.verbose)
    budget = len(arguments.concurrency) * (2 * arguments.timeout + arguments.produce_seconds + 60)
    run_main(lambda: main(arguments), budget_s=budget)
