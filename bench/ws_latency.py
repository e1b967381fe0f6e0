"""Log line printed by a script → received on the WebSocket stream.

Target (2 cores): p95 ≤ 100 ms.

The app is served by uvicorn in this process on a random 127.0.0.1 port. A Python event
prints `time.time()` --lines times, every --interval-ms (flush=True); it is started with
POST /api/v1/events/{id}/run and watched on WS /api/v1/executions/{id}/stream with a
bearer token. Per line: latency = receipt time - printed time, split at the line's `ts`
(when the worker read it from the pipe):

    printed → captured   ts - printed     (pipe, reader)
    captured → received  receipt - ts     (batching, INSERT, wake-up, read, send)

Topologies (--topology, default both):
- single: one node runs api + scheduler + worker (`cronium serve`); the log writer wakes the
  stream through the in-process hub.
- split: the API (and its stream) on one node, the worker on another (separate pools and
  hubs, one PostgreSQL): the wake-up travels by NOTIFY.

Usage: python bench/ws_latency.py [--runs 3] [--lines 200] [--topology single,split]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CpuMeter,
    bench_core,
    create_user,
    fresh_database,
    machine_info,
    run_main,
    running_node,
    say,
    setup_logging,
    summarize,
)

from cronium.app import create_app
from cronium.core import Core
from cronium.security.tokens import display_prefix, hash_token

TARGET_P95_MS = 100.0

SCRIPT = """import time
for _ in range({lines}):
    print(f"{{time.time():.6f}}", flush=True)
    time.sleep({interval})
"""


@contextlib.asynccontextmanager
async def serve(core: Core) -> AsyncIterator[int]:
    """The app on 127.0.0.1:<random port>; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(core.settings, core=core), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10)
        except TimeoutError:
            task.cancel()
        sock.close()


async def create_token(core: Core) -> str:
    token = "crn_" + secrets.token_urlsafe(24)
    async with core.db.acquire() as conn:
        user = await create_user(conn)
        await conn.execute(
            """INSERT INTO api_tokens (user_id, name, prefix, token_hash)
               VALUES ($1, 'bench', $2, $3)""",
            user,
            display_prefix(token),
            hash_token(token),
        )
    return token


async def one_run(port: int, token: str, event_id: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}/api/v1"
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        resp = await client.post(f"{base}/events/{event_id}/run")
        resp.raise_for_status()
        execution_id = resp.json()["execution_id"]
    uri = f"ws://127.0.0.1:{port}/api/v1/executions/{execution_id}/stream"
    total, to_capture, to_receive = [], [], []
    status = None
    async with connect(uri, additional_headers=headers, open_timeout=10) as ws:
        connected = time.time()
        while True:
            raw = await asyncio.wait_for(ws.recv(), timeout=60)
            received = time.time()
            message = json.loads(raw)
            if message["type"] == "end":
                status = message["status"]
                break
            if message["type"] != "log" or message["stream"] != "stdout":
                continue
            printed = float(message["line"])
            if printed < connected:
                continue  # printed before we listened: a replay, not live
            captured = datetime.fromisoformat(message["ts"]).timestamp()
            total.append((received - printed) * 1000)
            to_capture.append((captured - printed) * 1000)
            to_receive.append((received - captured) * 1000)
    return {
        "execution_id": execution_id,
        "status": status,
        "total": total,
        "to_capture": to_capture,
        "to_receive": to_receive,
    }


async def topology_run(url: str, topology: str, args: argparse.Namespace) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        api_core = await stack.enter_async_context(bench_core(url))
        if topology == "single":
            await stack.enter_async_context(running_node(api_core, ("api", "scheduler", "worker")))
        else:
            worker_core = await stack.enter_async_context(bench_core(url))
            await stack.enter_async_context(running_node(api_core, ("api",)))
            await stack.enter_async_context(running_node(worker_core, ("worker",)))
        token = await create_token(api_core)
        port = await stack.enter_async_context(serve(api_core))
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            content = SCRIPT.format(lines=args.lines, interval=args.interval_ms / 1000)
            resp = await client.post(
                f"http://127.0.0.1:{port}/api/v1/events",
                json={"name": f"ws-{topology}", "language": "python", "content": content},
            )
            if resp.status_code != 201:
                raise RuntimeError(f"creating the event failed: {resp.status_code} {resp.text}")
            event_id = resp.json()["id"]
        meter = CpuMeter()
        runs = []
        for index in range(args.runs):
            run = await one_run(port, token, event_id)
            say(
                f"  {topology} run {index + 1}: {len(run['total'])} lines, "
                f"p95 {summarize(run['total']).get('p95_ms')} ms ({run['status']})"
            )
            runs.append(run)
        cpu = meter.stop()
        # Tokens and users are per database: the next topology uses a fresh user.
        async with api_core.db.acquire() as conn:
            await conn.execute("DELETE FROM users")
    total = [x for r in runs for x in r["total"]]
    return {
        "topology": topology,
        "lines": len(total),
        "expected_lines": args.runs * args.lines,
        "statuses": [r["status"] for r in runs],
        "latency": summarize(total),
        "printed_to_captured": summarize(x for r in runs for x in r["to_capture"]),
        "captured_to_received": summarize(x for r in runs for x in r["to_receive"]),
        "cpu": cpu,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    machine = await machine_info()
    results = []
    async with fresh_database("ws") as (_name, url):
        for topology in args.topology:
            say(f"topology {topology}: {args.runs} runs of {args.lines} lines")
            results.append(await topology_run(url, topology, args))
    head = results[0]["latency"]
    worst_p95 = max(r["latency"].get("p95_ms") or float("inf") for r in results)
    return {
        "benchmark": "ws_latency",
        "topology": results[0]["topology"],
        "lines": results[0]["lines"],
        "p50_ms": head.get("p50_ms"),
        "p95_ms": head.get("p95_ms"),
        "p99_ms": head.get("p99_ms"),
        "max_ms": head.get("max_ms"),
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": worst_p95 <= TARGET_P95_MS,
        "print_interval_ms": args.interval_ms,
        "topologies": results,
        "machine": machine,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="executions per topology")
    parser.add_argument("--lines", type=int, default=200, help="lines per execution")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="between lines")
    parser.add_argument(
        "--topology",
        type=lambda s: [t for t in s.split(",") if t],
        default=["single", "split"],
        help="comma-separated: single, split",
    )
    parser.add_argument("--verbose", action="store_true", help="Cronium's INFO logs on stderr")
    args = parser.parse_args()
    if unknown := set(args.topology) - {"single", "split"}:
        parser.error(f"unknown topology {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    setup_logging(arguments.verbose)
    per_run = arguments.lines * arguments.interval_ms / 1000 + 15
    run_main(
        lambda: main(arguments), budget_s=len(arguments.topology) * (arguments.runs * per_run + 60)
    )
