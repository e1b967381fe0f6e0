"""Container executor overhead per job: a Bash `true` in a fresh container, one at a time.

Target (2 cores): p50 ≤ 400 ms per job.

A worker node with the container executor (Docker on this host, the locally built
cronium/bash image) runs --runs executions of one `true` event, one after the other after
--warmup untimed ones. From the database's timestamps, per job:

    claimed → finished   jobs.finished_at - jobs.started_at  (create the container with
                         its limits and mounts, start, `true`, wait, logs, remove, settle)
    enqueued → finished  jobs.finished_at - executions.created_at  (plus NOTIFY and claim)

`true` itself takes about a millisecond, so claimed → finished is the overhead.

Usage: python bench/container_overhead.py [--runs 20] [--warmup 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CpuMeter,
    bench_core,
    create_script_event,
    create_user,
    fresh_database,
    machine_info,
    manual_run,
    run_main,
    running_node,
    runtime_socket_server,
    say,
    setup_logging,
    summarize,
)

from cronium.engine import queue
from cronium.executors.registry import build_executors

TARGET_P50_MS = 400.0


async def run_once(conn: asyncpg.Connection, event_id: int, owner: int) -> dict[str, Any]:
    """Enqueue one run, wait for it; its job's timings in ms."""
    async with conn.transaction():
        execution_id = await queue.enqueue(
            conn,
            manual_run(event_id, owner),
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = await conn.fetchrow(
            """SELECT x.status::text AS status, j.error,
                      extract(epoch FROM j.finished_at - j.started_at) * 1000 AS run_ms,
                      extract(epoch FROM j.finished_at - x.created_at) * 1000 AS total_ms
               FROM executions x JOIN jobs j ON j.execution_id = x.id
               WHERE x.id = $1 AND x.finished_at IS NOT NULL""",
            execution_id,
        )
        if row is not None:
            if row["status"] != "succeeded":
                ended = f"{row['status']}: {row['error']}"
                raise RuntimeError(f"execution {execution_id} ended {ended}")
            return {"run_ms": float(row["run_ms"]), "total_ms": float(row["total_ms"])}
        await asyncio.sleep(0.01)
    raise TimeoutError(f"execution {execution_id} did not finish in 120 s")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    machine = await machine_info()
    async with (
        fresh_database("container") as (_, url),
        bench_core(url, CRONIUM_EXECUTOR="container") as core,
    ):
        executors = await build_executors(core.settings, node_id=core.node_id)
        try:
            async with core.db.acquire() as conn:
                owner = await create_user(conn)
                event_id = await create_script_event(conn, owner, "true", "true", "bash")
            async with (
                runtime_socket_server(core),
                running_node(core, ["worker"], executors),
                core.db.acquire() as conn,
            ):
                for _ in range(args.warmup):
                    await run_once(conn, event_id, owner)
                say(f"{args.runs} runs of `true` in containers, one at a time")
                meter = CpuMeter()
                runs = [await run_once(conn, event_id, owner) for _ in range(args.runs)]
                cpu = meter.stop()
        finally:
            await executors.aclose()
    claimed = summarize(r["run_ms"] for r in runs)
    total = summarize(r["total_ms"] for r in runs)
    say(f"claimed → finished p50 {claimed['p50_ms']} ms, p90 {claimed['p90_ms']} ms")
    return {
        "benchmark": "container_overhead",
        "runs": args.runs,
        "image": core.settings.image_bash,
        "p50_ms": claimed["p50_ms"],
        "p90_ms": claimed["p90_ms"],
        "max_ms": claimed["max_ms"],
        "claimed_to_finished": claimed,
        "enqueued_to_finished": total,
        "target_p50_ms": TARGET_P50_MS,
        "meets_target": claimed["p50_ms"] <= TARGET_P50_MS,
        "cpu": cpu,
        "machine": machine,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="Cronium's INFO logs on stderr")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    setup_logging(arguments.verbose)
    run_main(lambda: main(arguments), budget_s=120 + 10 * (arguments.runs + arguments.warmup))
