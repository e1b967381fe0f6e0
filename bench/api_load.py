"""REST API under load: 32 concurrent clients against `cronium serve` over real sockets.

Targets (ours, set for this benchmark; 2 cores, one Cronium process): at 32 concurrent
clients, list and detail endpoints p99 ≤ 250 ms with ≥ 100 (list) and ≥ 200 (detail)
requests/s, the run endpoint ≥ 100 runs/s with p99 ≤ 500 ms, and no error anywhere.

A fresh database is seeded like bench/ui_pages.py (ui_seed.py: users, --events events, of
which ~70 % are active with schedules, --executions runs over 30 days with jobs and log
lines, workflows), then `python -m cronium serve` starts as a subprocess with every role
(api, scheduler, worker; local executor): one process, one uvicorn worker, as deployed.
This process is the client: httpx on one keep-alive pool of --workers connections, half of
them signed in as an admin (sees all 10,000 runs), half as a user (own objects only),
each with a bearer token. Groups, one after the other, each with --warmup untimed seconds
and then --seconds measured:

  list    GET /api/v1/events and /api/v1/executions with filters, sorting and paging
  detail  GET /api/v1/events/{id}, /api/v1/executions/{id} and its logs (50 lines, the
          tail after a seq, and 1,000 of a 5,000-line run)
  run     POST /api/v1/events/{id}/run of a Bash `true` event; the node drains the queue
          while the requests arrive (same process), and the drain is awaited and checked

Per group: requests/s, p50/p95/p99/max ms, errors (any other status than expected, or a
transport error), per-endpoint p50/p99, and CPU ms per request of the server process, its
job scripts, PostgreSQL and this client (CPU is robust to other load on the machine;
latencies are not). The scheduled events of the seed keep firing in the background.

Usage: python bench/api_load.py [--seconds 20] [--workers 32] [--executions 10000]
       python bench/api_load.py --smoke   (0.5 s per group, a small seed: checks it works)
Environment: BENCH_API_SECONDS overrides the --seconds default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_load_setup import Dataset, drain, prepare, serve
from common import (
    DbCpuMeter,
    fresh_database,
    machine_info,
    proc_stat,
    rounded,
    run_main,
    say,
    setup_logging,
)
from loadgen import Call, CallSource, LoadResult, client_for, hammer

# Ours (no issue sets them): what a small team's dashboards and scripts should get.
TARGETS: dict[str, dict[str, float]] = {
    "list": {"p99_ms": 250.0, "requests_per_s": 100.0},
    "detail": {"p99_ms": 250.0, "requests_per_s": 200.0},
    "run": {"p99_ms": 500.0, "requests_per_s": 100.0},
}
GROUPS = ("list", "detail", "run")


# -- request mixes ---------------------------------------------------------------------------


def list_calls(data: Dataset) -> CallSource:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7 * 86400))

    def source(rng: Any, index: int) -> Call:
        who = data.persona(index)
        h = who.headers
        pick = rng.randrange(9)
        if pick == 0:
            return Call("GET /events", "GET", "/api/v1/events", h)
        if pick == 1:
            return Call(
                "GET /events?status&limit", "GET", "/api/v1/events?status=active&limit=20", h
            )
        if pick == 2:
            url = f"/api/v1/events?search=event-0{rng.randrange(10)}&tag=team-{rng.randrange(5)}"
            return Call("GET /events?search&tag", "GET", url, h)
        if pick == 3:
            url = f"/api/v1/events?sort=-next_fire_at&offset={rng.randrange(0, 100, 20)}&limit=20"
            return Call("GET /events?sort&offset", "GET", url, h)
        if pick == 4:
            return Call("GET /executions", "GET", "/api/v1/executions", h)
        if pick == 5:
            url = "/api/v1/executions?status=failed&limit=20"
            return Call("GET /executions?status", "GET", url, h)
        if pick == 6:
            url = f"/api/v1/executions?event_id={rng.choice(who.event_ids)}"
            return Call("GET /executions?event_id", "GET", url, h)
        if pick == 7:
            url = f"/api/v1/executions?trigger=manual&since={since}"
            return Call("GET /executions?trigger&since", "GET", url, h)
        offset = rng.randrange(0, max(1, len(who.execution_ids) - 50))
        url = f"/api/v1/executions?offset={offset}&limit=50"
        return Call("GET /executions?offset (deep)", "GET", url, h)

    return source


def detail_calls(data: Dataset) -> CallSource:
    def source(rng: Any, index: int) -> Call:
        who = data.persona(index)
        h = who.headers
        pick = rng.randrange(9)
        if pick < 2:
            url = f"/api/v1/events/{rng.choice(who.event_ids)}"
            return Call("GET /events/{id}", "GET", url, h)
        if pick < 4:
            url = f"/api/v1/executions/{rng.choice(who.execution_ids)}"
            return Call("GET /executions/{id}", "GET", url, h)
        if pick < 6:
            url = f"/api/v1/executions/{rng.choice(who.logged_ids)}/logs"
            return Call("GET /executions/{id}/logs", "GET", url, h)
        if pick < 8:
            url = f"/api/v1/executions/{rng.choice(who.logged_ids)}/logs?after=40"
            return Call("GET /executions/{id}/logs?after", "GET", url, h)
        url = f"/api/v1/executions/{data.big_execution}/logs?after={rng.randrange(4000)}"
        return Call("GET /executions/{id}/logs (1,000 lines)", "GET", url, h)

    return source


def run_calls(data: Dataset) -> CallSource:
    def source(rng: Any, index: int) -> Call:
        who = data.persona(index)
        url = f"/api/v1/events/{who.run_event}/run"
        body = {"input": {"n": rng.randrange(1_000_000)}}
        return Call("POST /events/{id}/run", "POST", url, who.headers, body, expect=202)

    return source


SOURCES = {"list": list_calls, "detail": detail_calls, "run": run_calls}


# -- measurement -----------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> tuple[float, float]:
    """(own, reaped children) CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def busy_pct(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    if start is None or end is None or end[1] <= start[1]:
        return None
    return rounded(100 * (end[0] - start[0]) / (end[1] - start[1]), 1)


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure_group(
    name: str, data: Dataset, base_url: str, server_pid: int, db_name: str, args: argparse.Namespace
) -> tuple[LoadResult, dict[str, Any]]:
    """Warm up, then measure one group; returns the load result and CPU per request."""
    source = SOURCES[name](data)
    async with client_for(base_url, args.workers) as client:
        if args.warmup > 0:
            await hammer(client, source, workers=args.workers, seconds=args.warmup, seed=99)
        db_meter = await DbCpuMeter(db_name).start()
        server0, jobs0, client0 = *proc_cpu_s(server_pid), own_cpu_s()
        machine0 = proc_stat()
        result = await hammer(client, source, workers=args.workers, seconds=args.seconds)
        server1, jobs1, client1 = *proc_cpu_s(server_pid), own_cpu_s()
        machine1 = proc_stat()
        db_cpu = await db_meter.stop()
    n = max(1, result.requests)
    cpu = {
        "server_ms_per_request": rounded(1000 * (server1 - server0) / n),
        "job_scripts_ms_per_request": rounded(1000 * (jobs1 - jobs0) / n),
        "postgres_ms_per_request": None if db_cpu is None else rounded(1000 * db_cpu / n),
        "client_ms_per_request": rounded(1000 * (client1 - client0) / n),
        "server_cpu_pct_of_one_core": rounded(100 * (server1 - server0) / result.seconds, 1),
        # All cores, everything on the machine (other programs too): near 100 %, the
        # server waited for a core rather than for work.
        "machine_cpu_busy_pct": busy_pct(machine0, machine1),
    }
    return result, cpu


def verdict(name: str, figures: dict[str, Any]) -> dict[str, bool]:
    target = TARGETS[name]
    p99, rps = figures.get("p99_ms"), figures.get("requests_per_s")
    return {
        "p99": p99 is not None and p99 <= target["p99_ms"],
        "throughput": rps is not None and rps >= target["requests_per_s"],
        "no_errors": figures["errors"] == 0,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    machine = await machine_info()
    groups: dict[str, Any] = {}
    total: LoadResult | None = None
    async with fresh_database("api_load") as (db_name, url):
        tmp = Path(tempfile.mkdtemp(prefix="cronium-bench-"))
        env, data, seeded = await prepare(url, tmp, args)
        async with serve(env) as (base_url, server_pid, server_log):
            conn = await asyncpg.connect(url)
            try:
                for name in args.groups:
                    say(
                        f"{name}: {args.workers} clients, {args.warmup:g} s warm-up, "
                        f"{args.seconds:g} s measured"
                    )
                    result, cpu = await measure_group(
                        name, data, base_url, server_pid, db_name, args
                    )
                    figures = result.figures() | {"cpu": cpu}
                    if name == "run":
                        figures["drain"] = await drain(conn, data, args.drain_timeout)
                    figures["meets"] = verdict(name, figures)
                    groups[name] = figures
                    total = result if total is None else total.merge(result)
                    say(
                        f"  {figures['requests_per_s']} req/s, p50 {figures['p50_ms']} ms, "
                        f"p99 {figures['p99_ms']} ms, errors {figures['errors']}"
                    )
            finally:
                await conn.close()
        log_text = await asyncio.to_thread(server_log.read_text, errors="replace")
        tracebacks = log_text.count("Traceback")
        shutil.rmtree(tmp, ignore_errors=True)
    overall = total.figures() if total is not None else {}
    overall.pop("by_endpoint", None)
    drained_ok = groups.get("run", {}).get("drain", {}).get("ok", True)
    meets = (
        all(all(g["meets"].values()) for g in groups.values()) and drained_ok and tracebacks == 0
    )
    return {
        "benchmark": "api_load",
        "method": (
            "`python -m cronium serve` subprocess (1 uvicorn worker, all roles, local executor) "
            "on 127.0.0.1; closed-loop httpx clients in the benchmark process, bearer tokens"
        ),
        "workers": args.workers,
        "seconds_per_group": args.seconds,
        "seeded": seeded,
        "groups": groups,
        "overall": overall,
        "server_tracebacks": tracebacks,
        "targets": TARGETS,
        "meets_target": meets,
        "machine": machine | {"loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_s = float(os.environ.get("BENCH_API_SECONDS", "20"))
    parser.add_argument("--seconds", type=float, default=default_s, help="measured, per group")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds per group")
    parser.add_argument("--workers", type=int, default=32, help="concurrent clients")
    parser.add_argument("--events", type=int, default=200, help="events to seed")
    parser.add_argument("--executions", type=int, default=10_000, help="executions to seed")
    parser.add_argument(
        "--groups", type=lambda s: [g for g in s.split(",") if g], default=list(GROUPS)
    )
    parser.add_argument("--concurrency", type=int, default=8, help="CRONIUM_WORKER_CONCURRENCY")
    parser.add_argument("--drain-timeout", type=float, default=180.0, help="run queue, s")
    parser.add_argument("--smoke", action="store_true", help="0.5 s per group, small seed")
    parser.add_argument("--verbose", action="store_true", help="Cronium's INFO logs on stderr")
    args = parser.parse_args(argv)
    if unknown := set(args.groups) - set(GROUPS):
        parser.error(f"--groups: unknown {', '.join(sorted(unknown))}; use {','.join(GROUPS)}")
    if args.smoke:
        args.seconds, args.warmup, args.executions, args.events = 0.5, 0.2, 600, 30
        args.workers = min(args.workers, 8)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    setup_logging(arguments.verbose)
    budget = 300 + len(arguments.groups) * (arguments.seconds + arguments.warmup)
    run_main(lambda: main(arguments), budget_s=budget + arguments.drain_timeout)
