"""Shared helpers of the benchmarks: fresh database, core and node lifecycles, machine
facts, percentiles, a PostgreSQL wire-protocol counter and the JSON result line.

Benchmarks are programs, not tests: each prints human-readable progress on stderr and its
figures as one JSON object on the last line of stdout. They only talk to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import os
import platform
import resource
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from sqlalchemy.engine import make_url

from cronium.app import create_app
from cronium.config import Settings, load_settings
from cronium.core import Core, open_core
from cronium.db.models import Trigger
from cronium.engine import queue
from cronium.engine.node import Node
from cronium.executors.registry import ExecutorSet, local_only
from cronium.runtime.socket import bind_runtime_socket

PG_ADMIN_URL = os.environ.get("CRONIUM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_PREFIX = "cronium_bench_"

log = logging.getLogger("bench")


# -- output ------------------------------------------------------------------------------


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("bench").setLevel(logging.INFO)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """The benchmark's figures: one JSON object, the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(result, separators=(",", ":"), default=str), flush=True)


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), p in [0, 100]."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarize(values: Iterable[float], *, unit: str = "ms", digits: int = 2) -> dict[str, Any]:
    """count, mean, p50/p90/p95/p99 and max of a sample (already in `unit`)."""
    data = sorted(values)
    out: dict[str, Any] = {"count": len(data)}
    if not data:
        return out
    out[f"min_{unit}"] = rounded(data[0], digits)
    out[f"mean_{unit}"] = rounded(sum(data) / len(data), digits)
    for p in (50, 90, 95, 99):
        out[f"p{p}_{unit}"] = rounded(percentile(data, p), digits)
    out[f"max_{unit}"] = rounded(data[-1], digits)
    return out


# -- machine facts -------------------------------------------------------------------------


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _mem_total_mb() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return None


def _bash_version() -> str | None:
    bash = shutil.which("bash")
    if bash is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [bash, "-c", "echo $BASH_VERSION"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    return None


def load_average() -> list[float] | None:
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


async def machine_info(pg_url: str = PG_ADMIN_URL) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_mb": _mem_total_mb(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "bash": _bash_version(),
        "loadavg_at_start": load_average(),
    }
    with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
        conn = await asyncpg.connect(pg_url, timeout=10)
        try:
            info["postgresql"] = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
    return info


def proc_stat() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)
    return None


class CpuMeter:
    """CPU used between start and stop: by this process, by its reaped children (job
    scripts), and by the whole machine (PostgreSQL and any other load included)."""

    def __init__(self) -> None:
        self._start = self._now()
        self._machine = proc_stat()
        self._wall = time.monotonic()

    @staticmethod
    def _now() -> tuple[float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime

    def stop(self) -> dict[str, Any]:
        own, kids = self._now()
        wall = time.monotonic() - self._wall
        own -= self._start[0]
        kids -= self._start[1]
        machine_pct = None
        end = proc_stat()
        if self._machine is not None and end is not None and end[1] > self._machine[1]:
            machine_pct = 100 * (end[0] - self._machine[0]) / (end[1] - self._machine[1])
        return {
            "wall_s": round(wall, 2),
            "cronium_process_cpu_s": round(own, 2),
            "cronium_process_cpu_pct_of_one_core": round(100 * own / wall, 1) if wall else None,
            "job_processes_cpu_s": round(kids, 2),
            "machine_cpu_busy_pct_all_cores": rounded(machine_pct, 1),
            "loadavg_at_end": load_average(),
        }


def _pid_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DbCpuMeter:
    """CPU used by the PostgreSQL backends connected to one database (this host's server).

    Backends that start during the measurement count in full; one that ends before stop()
    is missed (the engine's pool keeps its connections, so this is rare).
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self._start: dict[int, float] = {}

    async def _pids(self) -> list[int]:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database
            )
        finally:
            await conn.close()
        return [r["pid"] for r in rows]

    async def start(self) -> DbCpuMeter:
        for pid in await self._pids():
            if (cpu := _pid_cpu_s(pid)) is not None:
                self._start[pid] = cpu
        return self

    async def stop(self) -> float | None:
        """CPU seconds since start(); None when /proc shows no backend (remote server)."""
        total, seen = 0.0, False
        for pid in await self._pids():
            if (cpu := _pid_cpu_s(pid)) is not None:
                seen = True
                total += cpu - self._start.get(pid, 0.0)
        return round(total, 2) if seen else None


# -- database, core, node ------------------------------------------------------------------


def cpu_per_job(cpu: dict[str, Any], db_cpu_s: float | None, jobs: int) -> dict[str, Any]:
    """CPU milliseconds per job by consumer, and the throughput they allow at best.

    Robust to other load on the machine (unlike latencies): `ceiling_all_cores` is what
    this host's cores could sustain if nothing else ran; `ceiling_event_loop` is the limit
    of the single Cronium process (one event loop, one GIL: at most one core).
    """
    if jobs <= 0:
        return {}
    cronium = 1000 * cpu["cronium_process_cpu_s"] / jobs
    scripts = 1000 * cpu["job_processes_cpu_s"] / jobs
    postgres = None if db_cpu_s is None else 1000 * db_cpu_s / jobs
    total = cronium + scripts + (postgres or 0.0)
    cpus = os.cpu_count() or 1
    return {
        "cronium_ms": rounded(cronium),
        "scripts_ms": rounded(scripts),
        "postgres_ms": rounded(postgres),
        "total_ms": rounded(total),
        "ceiling_all_cores_jobs_per_s": rounded(1000 * cpus / total, 1) if total else None,
        "ceiling_event_loop_jobs_per_s": rounded(1000 / cronium, 1) if cronium else None,
    }


def db_url(database: str, admin_url: str = PG_ADMIN_URL) -> str:
    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(label: str) -> AsyncIterator[tuple[str, str]]:
    """An empty database for one benchmark, dropped (WITH FORCE) however the run ends.

    Yields (name, url). The caller migrates it (open_core does).
    """
    name = f"{DB_PREFIX}{label}_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    say(f"created database {name}")
    try:
        yield name, db_url(name)
    finally:
        # Shielded: a cancelled benchmark (Ctrl-C, SIGTERM, timeout) still drops it.
        with contextlib.suppress(Exception):
            await asyncio.shield(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            say(f"dropped database {name}")


def bench_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(
        DATABASE_URL=database_url,
        CRONIUM_DATA_DIR=str(data_dir),
        CRONIUM_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        CRONIUM_SECRET_KEY=secrets.token_urlsafe(40),
        **{k: str(v) for k, v in overrides.items()},
    )


@contextlib.asynccontextmanager
async def bench_core(database_url: str, **overrides: Any) -> AsyncIterator[Core]:
    """Migrated Core on `database_url`, with a throw-away data directory."""
    with tempfile.TemporaryDirectory(prefix="cronium-bench-") as tmp:
        settings = bench_settings(database_url, Path(tmp) / "data", **overrides)
        core = await open_core(settings)
        try:
            yield core
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(core.close())


@contextlib.asynccontextmanager
async def running_node(
    core: Core, roles: Iterable[str], executors: ExecutorSet | None = None
) -> AsyncIterator[Node]:
    """A started Node; stopped (workers drained, bounded) on exit, even on error."""
    node = Node(core, frozenset(roles), executors or local_only())
    task = asyncio.create_task(node.run(), name="bench-node")
    try:
        ready = asyncio.ensure_future(node.ready.wait())
        done, _ = await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises what stopped it
        if ready not in done:
            ready.cancel()
            raise TimeoutError("node not ready after 30 s")
        yield node
    finally:
        node.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=core.settings.kill_grace_s + 15)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        except Exception as exc:  # the node crashed: report, the caller's error wins
            say(f"node ended with {type(exc).__name__}: {exc}")


def manual_run(
    event_id: int, owner: int, targets: list[queue.Target] | None = None
) -> queue.NewExecution:
    """A manual run of the event as the API would start it (on this host unless `targets`)."""
    return queue.NewExecution(
        event_id=event_id,
        owner_id=owner,
        trigger=Trigger.manual,
        targets=targets or [queue.Target("local")],
        triggered_by="bench",
    )


async def create_user(conn: asyncpg.Connection, email: str = "bench@example.com") -> int:
    return int(
        await conn.fetchval(
            """INSERT INTO users (email, password_hash, role) VALUES ($1, 'not-a-hash', 'admin')
               RETURNING id""",
            email,
        )
    )


async def create_script_event(
    conn: asyncpg.Connection, owner_id: int, name: str, content: str, language: str = "bash"
) -> int:
    return int(
        await conn.fetchval(
            """INSERT INTO events (owner_id, name, type, language, content, status)
               VALUES ($1, $2, 'script', $3::script_language, $4, 'active') RETURNING id""",
            owner_id,
            name,
            language,
            content,
        )
    )


# -- process lifecycle -----------------------------------------------------------------------


def run_main(main: Callable[[], Awaitable[dict[str, Any]]], *, budget_s: float) -> None:
    """Run a benchmark with a hard time budget; SIGTERM/SIGINT cancel it (cleanup runs).

    Prints the result as the last stdout line; exits 1 (with an error object) on failure.
    """

    async def guarded() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, me.cancel)
        async with asyncio.timeout(budget_s):
            return await main()

    name = Path(sys.argv[0]).stem
    try:
        result = asyncio.run(guarded())
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, TimeoutError):
            reason = f"time budget of {budget_s:g} s exceeded"
        elif isinstance(exc, asyncio.CancelledError):
            reason = "interrupted (SIGINT/SIGTERM)"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        say(f"{name} failed: {reason}")
        emit({"benchmark": name, "error": reason})
        raise SystemExit(1) from None
    emit(result)


# -- PostgreSQL wire-protocol counter ---------------------------------------------------------

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class PgWireCounter:
    """A TCP proxy on 127.0.0.1 in front of PostgreSQL that counts what clients send.

    Counts frontend messages by type: 'Q' (simple query: one round trip, possibly several
    statements), 'P' (parse), 'B' (bind), 'E' (execute), 'S' (sync). A "statement" is one
    Q or one E; `by_sql` attributes each to its SQL text (prepared statements are tracked
    from Parse through Bind to Execute). Needs a server without TLS on that port: clients
    ask for TLS, PostgreSQL with `ssl = off` answers 'N' and the stream stays plain.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.counts: Counter[str] = Counter()
        self.by_sql: Counter[str] = Counter()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        return Counter(self.counts), Counter(self.by_sql)

    @staticmethod
    def statements(counts: Counter[str]) -> int:
        return counts["Q"] + counts["E"]

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        up = asyncio.create_task(self._client_to_server(client_r, server_w))
        down = asyncio.create_task(self._pipe(server_r, client_w))
        self._tasks |= {up, down}
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            self._tasks -= {up, down}
            for writer in (client_w, server_w):
                with contextlib.suppress(Exception):
                    writer.close()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        prepared: dict[bytes, str] = {}
        bound = ""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            # Untyped start-up packets: SSL/GSS requests (answered 'N'), then the startup.
            while True:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                body = await reader.readexactly(length - 8)
                writer.write(head + body)
                await writer.drain()
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    break
            while True:
                head = await reader.readexactly(5)
                kind = chr(head[0])
                (length,) = struct.unpack("!i", head[1:])
                body = await reader.readexactly(length - 4)
                self.counts[kind] += 1
                if kind == "Q":
                    self.by_sql[_short_sql(body.split(b"\0", 1)[0])] += 1
                elif kind == "P":
                    name, sql = body.split(b"\0", 2)[:2]
                    prepared[name] = _short_sql(sql)
                elif kind == "B":
                    _portal, name = body.split(b"\0", 2)[:2]
                    bound = prepared.get(name, "?")
                elif kind == "E":
                    self.by_sql[bound] += 1
                writer.write(head + body)
                await writer.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()


def _short_sql(raw: bytes, width: int = 90) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def proxied_url(url: str, port: int) -> str:
    """`url` pointed at the counter on 127.0.0.1:`port` (the server must not use TLS:
    clients ask for it, PostgreSQL with `ssl = off` answers 'N' and the stream stays plain).
    """
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def runtime_socket_server(core: Core) -> AsyncIterator[Path]:
    """The app on the Runtime API's Unix socket, in this process (as a worker node serves it)."""
    path = core.settings.runtime_socket_path
    sock = bind_runtime_socket(path)
    config = uvicorn.Config(
        create_app(core.settings, core=core), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="runtime-socket")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield path
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10)
        except TimeoutError:
            task.cancel()
        sock.close()
