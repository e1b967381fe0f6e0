"""Idle node → database queries per second (target: ≤ 1 query/s).

A Node with every role (api, scheduler, worker) runs on an empty, migrated database with
nothing to do. After a settle period, queries are counted over a window two ways:

- wire: every connection of the node goes through a counting proxy on 127.0.0.1, which
  sees each statement (simple Query or Execute message) and its SQL text. Exact, and it
  tells where the queries come from. This is the headline figure.
- pg_stat_database: the delta of xact_commit + xact_rollback of the benchmark database,
  read from a connection to another database (so the reader adds nothing). Counts
  transactions, not statements (BEGIN; … ; COMMIT is one), and PostgreSQL flushes backend
  statistics lazily (a busy backend up to ~10 s late). In a steady idle state that lag
  cancels out over the window, but the start-up burst (migrations, pool set-up) must be
  flushed before the window opens: hence --settle defaults to 12 s, not 5.

pg_stat_statements is not used: it needs shared_preload_libraries (a server restart of a
shared PostgreSQL); whether it is loaded is reported. The wire count is exact anyway.

Usage: python bench/idle_queries.py [--seconds 60] [--settle 12]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PG_ADMIN_URL,
    CpuMeter,
    PgWireCounter,
    bench_core,
    fresh_database,
    machine_info,
    proxied_url,
    rounded,
    run_main,
    running_node,
    say,
    setup_logging,
)

TARGET_QPS = 1.0
ROLES = ("api", "scheduler", "worker")


async def _xacts(admin: asyncpg.Connection, database: str) -> int:
    # Outside a transaction, every read takes a fresh statistics snapshot.
    return int(
        await admin.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            database,
        )
    )


async def _pg_stat_statements_loaded(admin: asyncpg.Connection) -> bool:
    libs = str(await admin.fetchval("SHOW shared_preload_libraries"))
    return "pg_stat_statements" in libs


async def main(args: argparse.Namespace) -> dict[str, Any]:
    machine = await machine_info()
    upstream = make_url(PG_ADMIN_URL)
    counter = PgWireCounter(upstream.host or "127.0.0.1", upstream.port or 5432)
    await counter.start()
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        has_pgss = await _pg_stat_statements_loaded(admin)
        async with (
            fresh_database("idle") as (name, url),
            bench_core(proxied_url(url, counter.port)) as core,
            running_node(core, ROLES),
        ):
            say(f"node running ({','.join(ROLES)}); settling {args.settle:g} s")
            await asyncio.sleep(args.settle)
            wire0, sql0 = counter.snapshot()
            xact0 = await _xacts(admin, name)
            meter = CpuMeter()
            say(f"measuring for {args.seconds:g} s")
            await asyncio.sleep(args.seconds)
            wire1, sql1 = counter.snapshot()
            xact1 = await _xacts(admin, name)
            cpu = meter.stop()
    finally:
        await admin.close()
        await counter.stop()

    seconds = args.seconds
    wire = wire1 - wire0
    statements = PgWireCounter.statements(wire)
    round_trips = wire["Q"] + wire["S"]
    by_sql = sql1 - sql0
    qps = statements / seconds
    return {
        "benchmark": "idle_queries",
        "roles": list(ROLES),
        "window_s": seconds,
        "queries_per_s": rounded(qps, 3),
        "method": "wire protocol counter (statements = Query + Execute messages of the node)",
        "queries": statements,
        "round_trips": round_trips,
        "round_trips_per_s": rounded(round_trips / seconds, 3),
        "pg_stat_database_xacts": xact1 - xact0,
        "pg_stat_database_xacts_per_s": rounded((xact1 - xact0) / seconds, 3),
        "pg_stat_statements": "loaded" if has_pgss else "unavailable (not preloaded)",
        "messages": dict(sorted(wire.items())),
        "by_sql": [
            {"sql": sql, "count": n, "per_min": rounded(60 * n / seconds, 1)}
            for sql, n in by_sql.most_common()
        ],
        "target_queries_per_s": TARGET_QPS,
        "meets_target": qps <= TARGET_QPS,
        "cpu": cpu,
        "machine": machine,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--settle", type=float, default=12.0, help="wait before measuring")
    parser.add_argument("--verbose", action="store_true", help="Cronium's INFO logs on stderr")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    setup_logging(arguments.verbose)
    run_main(lambda: main(arguments), budget_s=arguments.seconds + arguments.settle + 120)
