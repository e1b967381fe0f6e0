"""A 40-node sequential workflow of Python events computing fibo(10): trigger → end.

Target (2 cores): ≤ 1.0 s from trigger to workflow end (local executor, one node).

Each node is its own Python event (`fibo(10)`, then `cronium.output(...)`), chained by
`on_success` edges. A Node (scheduler + worker, local executor) runs; the benchmark
starts the workflow in one transaction (the roots' jobs are enqueued with it) and waits
for the run to finish. From the database's timestamps, per node:

    enqueued → claimed   jobs.started_at - executions.created_at  (NOTIFY, claim)
    claimed → finished   jobs.finished_at - jobs.started_at  (load, spawn python, fibo,
                         the SDK's output call, exit, logs, settle)
    finished → next      next node's executions.created_at - this node's jobs.finished_at
                         (the settling transaction starts the successor: ~0)

and, measured outside the engine, the bare cost of `python3 -c pass` with the SDK
pre-loaded (what every node pays to start an interpreter).

Usage: python bench/workflow_chain.py [--nodes 40] [--runs 3] [--bash-true]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

from common import (
    bench_core,
    create_script_event,
    create_user,
    fresh_database,
    machine_info,
    rounded,
    run_main,
    running_node,
    runtime_socket_server,
    say,
    setup_logging,
    summarize,
)

from cronium.core import Core
from cronium.db.models import Trigger
from cronium.engine import workflows
from cronium.executors.local import interpreter
from cronium.sdk import SDK_DIR, preload_env

TARGET_S = 1.0
FIBO = """
def fibo(n):
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)

cronium.output({"fibo": fibo(10), "step": cronium.input().get("step", 0) + 1})
"""


async def build_chain(conn: asyncpg.Connection, owner: int, nodes: int, bash_true: bool) -> int:
    workflow_id = int(
        await conn.fetchval(
            "INSERT INTO workflows (owner_id, name, status) VALUES ($1, 'chain', 'active')"
            " RETURNING id",
            owner,
        )
    )
    previous: int | None = None
    for i in range(nodes):
        if bash_true:
            event_id = await create_script_event(conn, owner, f"true-{i:02d}", "true", "bash")
        else:
            event_id = await create_script_event(conn, owner, f"fibo-{i:02d}", FIBO, "python")
        node_id = int(
            await conn.fetchval(
                "INSERT INTO workflow_nodes (workflow_id, name, event_id) VALUES ($1, $2, $3)"
                " RETURNING id",
                workflow_id,
                f"n{i:02d}",
                event_id,
            )
        )
        if previous is not None:
            await conn.execute(
                "INSERT INTO workflow_edges (workflow_id, source_id, target_id, type)"
                " VALUES ($1, $2, $3, 'on_success')",
                workflow_id,
                previous,
                node_id,
            )
        previous = node_id
    return workflow_id


async def one_run(core: Core, workflow_id: int, owner: int, check: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    async with core.db.acquire() as conn:
        async with conn.transaction():
            run_id = await workflows.start_run(
                conn, workflow_id, owner_id=owner, trigger=Trigger.manual, input={}
            )
        while True:
            status = await conn.fetchval(
                "SELECT status::text FROM workflow_runs WHERE id = $1 AND finished_at IS NOT NULL",
                run_id,
            )
            if status is not None:
                break
            await asyncio.sleep(0.002)
        wall_s = time.perf_counter() - started
        rows = await conn.fetch(
            """SELECT x.created_at, j.started_at AS claimed, j.finished_at AS done,
                      n.output
               FROM workflow_node_runs n JOIN executions x ON x.id = n.execution_id
               JOIN jobs j ON j.execution_id = x.id
               WHERE n.run_id = $1 ORDER BY x.created_at""",
            run_id,
        )
        db_total_s = await conn.fetchval(
            "SELECT extract(epoch FROM finished_at - created_at) FROM workflow_runs WHERE id = $1",
            run_id,
        )
    if status != "succeeded":
        raise RuntimeError(f"workflow run {run_id} ended {status}")
    if check and rows[-1]["output"] != {"fibo": 55, "step": len(rows)}:
        raise RuntimeError(f"unexpected last output {rows[-1]['output']}")
    ms = lambda a, b: (b - a).total_seconds() * 1000  # noqa: E731
    return {
        "wall_s": wall_s,
        "db_total_s": float(db_total_s),
        "enqueued_to_claimed": [ms(r["created_at"], r["claimed"]) for r in rows],
        "claimed_to_finished": [ms(r["claimed"], r["done"]) for r in rows],
        "finished_to_next": [ms(a["done"], b["created_at"]) for a, b in itertools.pairwise(rows)],
    }


def bare_python_ms(samples: int = 10) -> float:
    """`python3 -u -c pass` with the SDK pre-loaded, as the local executor starts it."""
    import os

    env = {**os.environ, **preload_env(str(SDK_DIR))}
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        subprocess.run([*interpreter("python"), "-c", "pass"], env=env, check=True)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    info = await machine_info()
    python_ms = bare_python_ms()
    async with (
        fresh_database("workflow_chain") as (_, url),
        bench_core(url, CRONIUM_EXECUTOR="local") as core,
    ):
        async with core.db.acquire() as conn:
            owner = await create_user(conn)
            workflow_id = await build_chain(conn, owner, args.nodes, args.bash_true)
        async with runtime_socket_server(core), running_node(core, ["scheduler", "worker"]):
            say("warm-up run")
            check = not args.bash_true
            await one_run(core, workflow_id, owner, check)
            results = []
            for i in range(args.runs):
                say(f"run {i + 1}/{args.runs}")
                results.append(await one_run(core, workflow_id, owner, check))
    walls = [r["wall_s"] for r in results]
    best = min(results, key=lambda r: r["wall_s"])
    median_wall = statistics.median(walls)
    per_step = lambda key: summarize([v for r in results for v in r[key]])  # noqa: E731
    return {
        "benchmark": "workflow_chain",
        "nodes": args.nodes,
        "steps": "bash `true` (engine overhead only)" if args.bash_true else "python fibo(10)",
        "runs": args.runs,
        "trigger_to_end_s": {
            "median": rounded(median_wall, 3),
            "best": rounded(best["wall_s"], 3),
            "worst": rounded(max(walls), 3),
        },
        "per_node_ms": rounded(median_wall * 1000 / args.nodes, 1),
        "stages_ms": {
            "enqueued_to_claimed": per_step("enqueued_to_claimed"),
            "claimed_to_finished": per_step("claimed_to_finished"),
            "finished_to_next": per_step("finished_to_next"),
        },
        "python": interpreter("python")[0],
        "bare_python_start_ms": rounded(python_ms, 1),
        "target_s": TARGET_S,
        "meets_target": median_wall <= TARGET_S and not args.bash_true,
        "machine": info,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--bash-true", action="store_true", help="steps run bash `true`: the engine's own cost"
    )
    parser.add_argument("--verbose", action="store_true")
    arguments = parser.parse_args()
    setup_logging(arguments.verbose)
    run_main(lambda: main(arguments), budget_s=300)
