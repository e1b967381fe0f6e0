"""One event on 20 loopback sshd instances running `true`: fan-out time and per-job overhead.

Targets (2 cores): the 20-host fan-out ≤ 2 s, warm per-job overhead ≤ 150 ms.

Starts N OpenSSH servers on 127.0.0.1 (random ports, generated host and user keys; needs
root and openssh-server, like the tests), adds them as servers, and runs one Bash event
whose targets are all N servers through a real Node (scheduler + worker, worker
concurrency ≥ N). The first execution meets no pooled connection (cold: TCP, key
exchange, auth per host); the next ones reuse the pool (warm). Per execution:

    fan-out   executions.finished_at - executions.created_at  (enqueue → last job settled)
    per job   jobs.finished_at - jobs.started_at  (claim → finished: connect if cold, mktemp,
              forward, SFTP upload of script + SDK, run `true`, clean up) — the overhead,
              since `true` itself takes about a millisecond

The warm per-job overhead target is judged on one-host runs made one after the other
(`single_host_sequential.per_job.p50_ms`): in a 20-host fan-out, 20 jobs share 2 cores
and each job's wall time mostly measures waiting for a core, so that figure is reported
(`warm.per_job`) along with the fan-out time divided by the hosts.

Usage: python bench/ssh_fanout.py [--hosts 20] [--warm-runs 5] [--single-runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    bench_core,
    create_script_event,
    create_user,
    fresh_database,
    machine_info,
    manual_run,
    rounded,
    run_main,
    running_node,
    say,
    setup_logging,
    summarize,
)
from tests.support import sshd

from cronium.core import Core
from cronium.engine import queue

TARGET_FANOUT_S = 2.0
TARGET_WARM_JOB_MS = 150.0


async def add_servers(
    core: Core, conn: asyncpg.Connection, owner: int, hosts: list[Any]
) -> list[int]:
    ids = []
    for host in hosts:
        ids.append(
            int(
                await conn.fetchval(
                    """INSERT INTO servers (owner_id, name, host, port, username, auth_type,
                                            secret_encrypted, max_concurrent_jobs)
                       VALUES ($1, $2, '127.0.0.1', $3, $4, 'key', $5, 4) RETURNING id""",
                    owner,
                    host.name,
                    host.port,
                    host.user.name,
                    core.cipher.encrypt_str(host.user.private_key),
                )
            )
        )
    return ids


async def one_run(
    core: Core, event_id: int, owner: int, server_ids: list[int], names: list[str]
) -> dict[str, Any]:
    async with core.db.acquire() as conn, conn.transaction():
        execution_id = await queue.enqueue(
            conn,
            manual_run(
                event_id,
                owner,
                [queue.Target(n, i) for n, i in zip(names, server_ids, strict=True)],
            ),
        )
        await conn.execute("SELECT pg_notify($1, '')", queue.JOBS_CHANNEL)
    async with core.db.acquire() as conn:
        for _ in range(6000):
            row = await conn.fetchrow(
                "SELECT status::text AS status,"
                " extract(epoch FROM finished_at - created_at) AS total_s"
                " FROM executions WHERE id = $1",
                execution_id,
            )
            if row["status"] not in ("queued", "running", "waiting"):
                break
            await asyncio.sleep(0.01)
        jobs = await conn.fetch(
            "SELECT status::text AS status, error,"
            " extract(epoch FROM finished_at - started_at) * 1000 AS ms"
            " FROM jobs WHERE execution_id = $1",
            execution_id,
        )
    if row["total_s"] is None:
        states = sorted({(j["status"], j["error"]) for j in jobs}, key=str)
        raise RuntimeError(f"execution {execution_id} still {row['status']}: jobs {states}")
    failed = [j["error"] for j in jobs if j["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs did not succeed, e.g. {failed[0]}")
    return {
        "status": row["status"],
        "fanout_s": float(row["total_s"]),
        "job_ms": sorted(float(j["ms"]) for j in jobs),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if not os.path.exists(sshd.SSHD):  # noqa: ASYNC240 - once, before anything runs
        raise RuntimeError("openssh-server is not installed (apt-get install openssh-server)")
    sshd.ensure_user()
    key_dir = Path(tempfile.mkdtemp(prefix="cronium-bench-keys-"))
    private = sshd._keygen(key_dir / "id_ed25519")
    user = sshd.SshUser(
        sshd.TEST_USER,
        sshd.TEST_PASSWORD,
        key_dir,
        private,
        (key_dir / "id_ed25519.pub").read_text().strip(),
    )
    say(f"starting {args.hosts} sshd instances")
    hosts = [sshd.start_sshd(user, f"bench-{i:02d}") for i in range(args.hosts)]
    info = await machine_info()
    try:
        async with (
            fresh_database("ssh_fanout") as (_, url),
            bench_core(url, CRONIUM_WORKER_CONCURRENCY=max(args.hosts + 4, 8)) as core,
        ):
            async with core.db.acquire() as conn:
                owner = await create_user(conn)
                event_id = await create_script_event(conn, owner, "fanout", "true")
                server_ids = await add_servers(core, conn, owner, hosts)
            names = [h.name for h in hosts]
            async with running_node(core, ["scheduler", "worker"]):
                say("cold run (no pooled connection)")
                cold = await one_run(core, event_id, owner, server_ids, names)
                warm = []
                for i in range(args.warm_runs):
                    say(f"warm run {i + 1}/{args.warm_runs}")
                    warm.append(await one_run(core, event_id, owner, server_ids, names))
                say(f"{args.single_runs} one-host runs, one after the other (warm)")
                single = [
                    await one_run(core, event_id, owner, server_ids[:1], names[:1])
                    for _ in range(args.single_runs)
                ]
    finally:
        for host in hosts:
            host.kill()
    warm_fanout = [r["fanout_s"] for r in warm]
    warm_jobs = [ms for r in warm for ms in r["job_ms"]]
    single_jobs = [ms for r in single for ms in r["job_ms"]]
    single_job_p50 = statistics.median(single_jobs)
    warm_fanout_median = statistics.median(warm_fanout)
    return {
        "benchmark": "ssh_fanout",
        "hosts": args.hosts,
        "warm_runs": args.warm_runs,
        "cold": {
            "fanout_s": rounded(cold["fanout_s"], 3),
            "per_job": summarize(cold["job_ms"]),
        },
        "warm": {
            "fanout_s_median": rounded(warm_fanout_median, 3),
            "fanout_s_max": rounded(max(warm_fanout), 3),
            "per_job": summarize(warm_jobs),
        },
        "single_host_sequential": {
            "runs": args.single_runs,
            "per_job": summarize(single_jobs),
            "end_to_end": summarize([r["fanout_s"] * 1000 for r in single]),
        },
        "amortised_warm_ms_per_job": rounded(warm_fanout_median * 1000 / args.hosts, 1),
        "target_fanout_s": TARGET_FANOUT_S,
        "target_warm_job_ms": TARGET_WARM_JOB_MS,
        "meets_target": warm_fanout_median <= TARGET_FANOUT_S
        and cold["fanout_s"] <= TARGET_FANOUT_S
        and single_job_p50 <= TARGET_WARM_JOB_MS,
        "machine": info,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--single-runs", type=int, default=20)
    parser.add_argument("--verbose", action="store_true")
    arguments = parser.parse_args()
    setup_logging(arguments.verbose)
    run_main(lambda: main(arguments), budget_s=300)
