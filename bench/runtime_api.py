"""SDK calls from inside running scripts → Runtime API over the Unix socket.

Target (2 cores): p99 ≤ 10 ms and ≥ 1,000 calls/s from one Python script (Python SDK).

A worker node with the local executor runs real events (Python and Bash scripts) while
the app serves the Runtime API on its Unix socket in the same process, as `cronium serve`
does. Each script loops --calls times over the same mix of SDK calls, one of each kind per
round so that every kind sees the same conditions:

    get_variable, set_variable, output, set_condition, get_condition, input, event

Every call is timed inside the script (Python: time.perf_counter_ns, monotonic; Bash:
$EPOCHREALTIME, as Bash has no monotonic clock without a fork), and the timings are printed
as "BENCH {json}" lines once the loop is over, read back from the execution's log.
calls/s = calls / the loop's wall time inside the script (start-up and the final print
excluded).

Scenarios:
- python: one Python script alone (the target applies to it).
- python_concurrent: --concurrent Python scripts at once (aggregate calls/s, shared
  server): what one node serves when several scripts use the SDK together.
- bash: one Bash script (the Bash SDK starts one curl per call: reported, no target).

The rate limit per job (CRONIUM_RUNTIME_RATE_LIMIT, 2,000 calls/s by default) stays in
force: a script faster than that would see 429s, which the SDK waits out, and the figures
would show it.

Usage: python bench/runtime_api.py [--calls 300] [--bash-calls 40] [--concurrent 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CpuMeter,
    DbCpuMeter,
    bench_core,
    create_script_event,
    create_user,
    fresh_database,
    load_average,
    machine_info,
    manual_run,
    rounded,
    run_main,
    running_node,
    runtime_socket_server,
    say,
    setup_logging,
    summarize,
)

from cronium.core import Core
from cronium.engine import queue

TARGET_P99_MS = 10.0
TARGET_CALLS_PER_S = 1000.0
KINDS = (
    "get_variable",
    "set_variable",
    "output",
    "set_condition",
    "get_condition",
    "input",
    "event",
)
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")

# Timings go out in chunks well under the log capture's line limit (64 KiB).
PYTHON_SCRIPT = """import json, os, time

clock = time.perf_counter_ns
key = "bench_" + os.environ["CRONIUM_JOB_ID"]
calls = {{
    "get_variable": lambda i: cronium.get_variable(key),
    "set_variable": lambda i: cronium.set_variable(key, i),
    "output": lambda i: cronium.output({{"i": i}}),
    "set_condition": lambda i: cronium.set_condition(i % 2 == 0),
    "get_condition": lambda i: cronium.get_condition(),
    "input": lambda i: cronium.input(),
    "event": lambda i: cronium.event(),
}}
assert tuple(calls) == {kinds!r}
cronium.set_variable(key, 0)
for i in range({warmup}):  # connect, import, first token resolve
    for call in calls.values():
        call(i)
times = {{kind: [] for kind in calls}}
start = clock()
for i in range({calls}):
    for kind, call in calls.items():
        t0 = clock()
        call(i)
        times[kind].append((clock() - t0) // 1000)
wall = clock() - start
for kind, values in times.items():
    for c in range(0, len(values), 2000):
        print("BENCH", json.dumps({{"kind": kind, "us": values[c : c + 2000]}}))
print("BENCH", json.dumps({{"wall_us": wall // 1000, "calls": {calls} * len(calls)}}))
"""

BASH_SCRIPT = """set -eu
key="bench_$CRONIUM_JOB_ID"
declare -A times=()
call() {{
    case $1 in
    get_variable) cronium_get_variable "$key" >/dev/null ;;
    set_variable) cronium_set_variable "$key" "$2" ;;
    output) cronium_output "{{\\"i\\":$2}}" ;;
    set_condition) cronium_set_condition "$(($2 % 2 == 0))" ;;
    get_condition) cronium_get_condition >/dev/null ;;
    input) cronium_input >/dev/null ;;
    event) cronium_event >/dev/null ;;
    esac
}}
kinds=({kinds})
cronium_set_variable "$key" 0
for ((i = 0; i < {warmup}; i++)); do
    for kind in "${{kinds[@]}}"; do call "$kind" "$i"; done
done
start=${{EPOCHREALTIME/./}}
for ((i = 0; i < {calls}; i++)); do
    for kind in "${{kinds[@]}}"; do
        t0=${{EPOCHREALTIME/./}}
        call "$kind" "$i"
        t1=${{EPOCHREALTIME/./}}
        times[$kind]+="${{times[$kind]:+,}}$((t1 - t0))"
    done
done
end=${{EPOCHREALTIME/./}}
for kind in "${{kinds[@]}}"; do
    echo "BENCH {{\\"kind\\":\\"$kind\\",\\"us\\":[${{times[$kind]}}]}}"
done
echo "BENCH {{\\"wall_us\\":$((end - start)),\\"calls\\":$(({calls} * ${{#kinds[@]}}))}}"
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    language: str
    content: str
    scripts: int  # at once
    timeout_s: float


async def run_scripts(
    core: Core, conn: asyncpg.Connection, owner: int, event_id: int, count: int, timeout_s: float
) -> list[dict[str, Any]]:
    """Start `count` executions of the event at once; wait for them; their BENCH lines."""
    async with conn.transaction():
        ids = []
        for _ in range(count):
            execution_id = await queue.enqueue(
                conn,
                manual_run(event_id, owner),
            )
            assert execution_id is not None
            ids.append(execution_id)
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await conn.fetch(
            "SELECT id, status::text AS status FROM executions WHERE id = ANY($1)", ids
        )
        if all(r["status"] in TERMINAL for r in rows):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"scripts still running after {timeout_s:g} s")
        await asyncio.sleep(0.1)
    runs = []
    for row in sorted(rows, key=lambda r: r["id"]):
        lines = await conn.fetch(
            """SELECT stream::text AS stream, line FROM log_lines
               WHERE execution_id = $1 ORDER BY seq""",
            row["id"],
        )
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        wall_us, calls = None, 0
        for line in lines:
            if line["stream"] != "stdout" or not line["line"].startswith("BENCH "):
                continue
            item = json.loads(line["line"][len("BENCH ") :])
            if "wall_us" in item:
                wall_us, calls = item["wall_us"], item["calls"]
            else:
                times[item["kind"]].extend(us / 1000 for us in item["us"])
        if row["status"] != "succeeded" or wall_us is None:
            tail = [f"{x['stream']}: {x['line'][:200]}" for x in lines[-10:]]
            raise RuntimeError(f"execution {row['id']} {row['status']}: {tail}")
        runs.append({"execution_id": row["id"], "wall_us": wall_us, "calls": calls, "ms": times})
    return runs


async def scenario(
    core: Core,
    conn: asyncpg.Connection,
    database: str,
    owner: int,
    spec: Scenario,
    repeats: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Run the scenario `repeats` times one after the other; every sample is pooled."""
    event_id = await create_script_event(
        conn, owner, f"bench-{spec.name}", spec.content, spec.language
    )
    say(f"{spec.name}: {spec.scripts} {spec.language} script(s) at once, {repeats} time(s)")
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler  # optional: pip install pyinstrument

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
    meter = CpuMeter()
    db_meter = await DbCpuMeter(database).start()
    repeated = []
    for _ in range(repeats):
        runs = await run_scripts(core, conn, owner, event_id, spec.scripts, spec.timeout_s)
        # Scripts run side by side: a repeat lasts as long as its longest loop.
        calls = sum(run["calls"] for run in runs)
        wall_s = max(run["wall_us"] for run in runs) / 1e6
        repeated.append((runs, calls, wall_s))
        say(f"  {spec.name}: {calls / wall_s:.1f} calls/s (load {load_average()})")
    cpu = meter.stop()
    if profiler is not None and profile is not None:
        profiler.stop()
        text = profiler.output_text(unicode=True, show_all=True)
        await asyncio.to_thread(profile.write_text, text)
        say(f"  profile of the Cronium process written to {profile}")
    db_cpu = await db_meter.stop()
    scripts = [run for runs, _, _ in repeated for run in runs]
    calls = sum(c for _, c, _ in repeated)
    wall_s = sum(w for _, _, w in repeated)
    overall = summarize(ms for run in scripts for kind in KINDS for ms in run["ms"][kind])
    result = {
        "language": spec.language,
        "scripts_at_once": spec.scripts,
        "repeats": repeats,
        "calls": calls,
        "calls_per_s": rounded(calls / wall_s, 1),
        "calls_per_s_by_repeat": [rounded(c / w, 1) for _, c, w in repeated],
        "slowest_script_calls_per_s": rounded(
            min(run["calls"] / (run["wall_us"] / 1e6) for run in scripts), 1
        ),
        "p50_ms": overall.get("p50_ms"),
        "p90_ms": overall.get("p90_ms"),
        "p99_ms": overall.get("p99_ms"),
        "max_ms": overall.get("max_ms"),
        "latency": overall,
        "by_kind": {
            kind: summarize(ms for run in scripts for ms in run["ms"][kind]) for kind in KINDS
        },
        # Whole runs: script start-up and job bookkeeping included.
        "cpu": cpu,
        "postgres_backends_cpu_s": db_cpu,
        "cpu_ms_per_call": {
            "cronium": rounded(1000 * cpu["cronium_process_cpu_s"] / calls, 3),
            "scripts": rounded(1000 * cpu["job_processes_cpu_s"] / calls, 3),
            "postgres": None if db_cpu is None else rounded(1000 * db_cpu / calls, 3),
        },
    }
    say(
        f"  {spec.name}: {result['calls_per_s']} calls/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms"
    )
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    machine = await machine_info()
    scenarios: dict[str, dict[str, Any]] = {}
    python = PYTHON_SCRIPT.format(kinds=KINDS, calls=args.calls, warmup=args.warmup)
    bash = BASH_SCRIPT.format(kinds=" ".join(KINDS), calls=args.bash_calls, warmup=1)
    specs = [
        Scenario("python", "python", python, 1, 120.0),
        Scenario("python_concurrent", "python", python, args.concurrent, 300.0),
        Scenario("bash", "bash", bash, 1, 300.0),
    ]
    async with (
        fresh_database("runtime") as (database, url),
        bench_core(url, CRONIUM_WORKER_CONCURRENCY=max(8, args.concurrent)) as core,
        runtime_socket_server(core) as path,
        running_node(core, ("worker",)),
    ):
        say(f"Runtime API on unix://{path}")
        async with core.db.acquire() as conn:
            owner = await create_user(conn)
            for spec in specs:
                if spec.name not in args.scenarios or spec.scripts < 1:
                    continue
                profile = Path(f"{args.profile}.{spec.name}.txt") if args.profile else None
                scenarios[spec.name] = await scenario(
                    core, conn, database, owner, spec, args.runs, profile
                )
    head = scenarios.get("python", {})
    meets = (
        bool(head)
        and (head.get("p99_ms") or float("inf")) <= TARGET_P99_MS
        and (head.get("calls_per_s") or 0) >= TARGET_CALLS_PER_S
    )
    return {
        "benchmark": "runtime_api",
        "transport": "unix socket",
        "calls_per_kind_per_script": {"python": args.calls, "bash": args.bash_calls},
        "python_calls_per_s": head.get("calls_per_s"),
        "python_p50_ms": head.get("p50_ms"),
        "python_p90_ms": head.get("p90_ms"),
        "python_p99_ms": head.get("p99_ms"),
        "python_max_ms": head.get("max_ms"),
        "python_concurrent_calls_per_s": scenarios.get("python_concurrent", {}).get("calls_per_s"),
        "bash_calls_per_s": scenarios.get("bash", {}).get("calls_per_s"),
        "bash_p50_ms": scenarios.get("bash", {}).get("p50_ms"),
        "bash_p99_ms": scenarios.get("bash", {}).get("p99_ms"),
        "target_p99_ms": TARGET_P99_MS,
        "target_calls_per_s": TARGET_CALLS_PER_S,
        "meets_target": meets,
        "rate_limit_per_s_per_job": core.settings.runtime_rate_limit_per_s,
        "scenarios": scenarios,
        "machine": machine,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="Python: rounds of the mix")
    parser.add_argument("--bash-calls", type=int, default=40, help="Bash: rounds of the mix")
    parser.add_argument("--warmup", type=int, default=5, help="Python: untimed rounds first")
    parser.add_argument("--concurrent", type=int, default=4, help="scripts at once (0: skip)")
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat each scenario; all samples are pooled"
    )
    parser.add_argument(
        "--scenarios",
        type=lambda s: [t for t in s.split(",") if t],
        default=["python", "python_concurrent", "bash"],
        help="comma-separated: python, python_concurrent, bash",
    )
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="profile the Cronium process with pyinstrument: PREFIX.<scenario>.txt",
    )
    parser.add_argument("--verbose", action="store_true", help="Cronium's INFO logs on stderr")
    args = parser.parse_args()
    if unknown := set(args.scenarios) - {"python", "python_concurrent", "bash"}:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    setup_logging(arguments.verbose)
    run_main(lambda: main(arguments), budget_s=120 + arguments.runs * 700)
