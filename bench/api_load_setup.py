"""Setup of bench/api_load.py: the seeded dataset with its tokens and ids, the `cronium
serve` subprocess, and the wait for the run endpoint's queue to drain."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from common import create_script_event, say
from ui_seed import seed

from cronium.config import load_settings
from cronium.core import open_core
from cronium.domain.accounts import create_api_token

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Persona:
    """A signed-in client: its bearer token and the ids it may see."""

    name: str
    headers: dict[str, str]
    event_ids: list[int]
    execution_ids: list[int]
    logged_ids: list[int]  # runs with 50 log lines
    run_event: int  # a Bash `true` event of its own, for POST /run


@dataclass(frozen=True)
class Dataset:
    admin: Persona
    user: Persona
    big_execution: int  # 5,000 log lines, the user's (the admin sees it too)

    def persona(self, worker: int) -> Persona:
        return self.admin if worker % 2 == 0 else self.user

    @property
    def run_events(self) -> list[int]:
        return [self.admin.run_event, self.user.run_event]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(url: str, tmp: Path, args: argparse.Namespace) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "CRONIUM_DATA_DIR": str(tmp / "data"),
        "CRONIUM_RUNTIME_SOCKET": str(tmp / "runtime.sock"),
        "CRONIUM_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "CRONIUM_SECRET_KEY": secrets.token_urlsafe(40),
        "CRONIUM_HOST": "127.0.0.1",
        "CRONIUM_PORT": str(free_port()),
        "CRONIUM_EXECUTOR": "local",
        "CRONIUM_LOG_LEVEL": "warning",
        "CRONIUM_WORKER_CONCURRENCY": str(args.concurrency),
        # The seed spans 30 days: keep its oldest runs from being pruned mid-benchmark.
        "CRONIUM_LOG_RETENTION_DAYS": "90",
    }


async def prepare(
    url: str, tmp: Path, args: argparse.Namespace
) -> tuple[dict[str, str], Dataset, dict[str, int]]:
    """Migrate and seed the database, make tokens and run events: (server env, dataset,
    seeded row counts)."""
    env = server_env(url, tmp, args)
    core = await open_core(load_settings(**env))
    try:
        async with core.db.acquire() as conn:
            ids, seeded = await seed(conn, core, args)
        personas = {}
        for name, user_id in (("admin", ids["admin"]), ("user", ids["user"])):
            async with core.sessions() as db, db.begin():
                _, token = await create_api_token(db, user_id, f"bench-{name}", None)
            async with core.db.acquire() as conn:
                personas[name] = await _persona(conn, name, user_id, token)
    finally:
        await core.close()
    return env, Dataset(personas["admin"], personas["user"], ids["big_execution"]), seeded


async def _persona(conn: asyncpg.Connection, name: str, user_id: int, token: str) -> Persona:
    admin = name == "admin"
    mine = "true" if admin else "owner_id = $1"
    arg = [] if admin else [user_id]

    async def ids(sql: str) -> list[int]:
        return [int(r[0]) for r in await conn.fetch(sql, *arg)]

    run_event = await create_script_event(conn, user_id, f"bench-run-{name}", "true")
    return Persona(
        name=name,
        headers={"Authorization": f"Bearer {token}"},
        event_ids=await ids(f"SELECT id FROM events WHERE {mine} ORDER BY id"),
        execution_ids=await ids(f"SELECT id FROM executions WHERE {mine} ORDER BY id"),
        logged_ids=await ids(
            f"SELECT DISTINCT execution_id FROM log_lines l JOIN executions x"
            f" ON x.id = l.execution_id WHERE {mine.replace('owner_id', 'x.owner_id')}"
            f" AND x.log_seq = 50"
        ),
        run_event=run_event,
    )


@contextlib.asynccontextmanager
async def serve(env: dict[str, str]) -> AsyncIterator[tuple[str, int, Path]]:
    """`python -m cronium serve` with `env`; yields (base URL, pid, log file) once /ready
    answers, and stops it with SIGTERM (drain) on exit."""
    log_path = Path(env["CRONIUM_DATA_DIR"]).parent / "server.log"
    base_url = f"http://127.0.0.1:{env['CRONIUM_PORT']}"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cronium",
            "serve",
            env=_clean_environ() | env,
            cwd=ROOT,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await _wait_ready(base_url, proc, log_path)
        say(f"cronium serve (pid {proc.pid}) ready on {base_url}")
        yield base_url, proc.pid, log_path
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _clean_environ() -> dict[str, str]:
    """This environment without Cronium's settings (a VALKEY_URL of the shell, say)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRONIUM_", "DATABASE_URL", "VALKEY"))
    }


async def _wait_ready(base_url: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                text = await asyncio.to_thread(log_path.read_text, errors="replace")
                raise RuntimeError(f"cronium serve exited with {proc.returncode}:\n{text[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError("cronium serve not ready after 60 s")


async def drain(conn: asyncpg.Connection, data: Dataset, timeout_s: float) -> dict[str, Any]:
    """Wait until every run of the run events has finished; their statuses and how long the
    queue took to empty after the last request."""
    started = time.monotonic()
    sql = """SELECT status::text, count(*) FROM executions WHERE event_id = ANY($1::bigint[])
             GROUP BY status"""
    statuses: dict[str, int] = {}
    while True:
        statuses = {r[0]: int(r[1]) for r in await conn.fetch(sql, data.run_events)}
        pending = statuses.get("queued", 0) + statuses.get("running", 0)
        if pending == 0 or time.monotonic() - started > timeout_s:
            break
        await asyncio.sleep(0.25)
    waited = time.monotonic() - started
    say(f"  run queue drained in {waited:.1f} s: {statuses}")
    return {
        "seconds_after_last_request": round(waited, 2),
        "statuses": statuses,
        # Older finished runs may already be pruned (retention: 1,000 per event).
        "ok": pending == 0 and set(statuses) <= {"succeeded"},
    }
