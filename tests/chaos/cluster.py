"""A small Cronium cluster for fault injection: a private PostgreSQL, a private Valkey and
node processes started with `cronium serve`, each of which can be killed and started again.

Everything is private to the test (own PostgreSQL server in a temporary dir, own
redis-server on a free port), so restarting them disturbs no other test running in
parallel.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cronium.db.embedded import EmbeddedPostgres
from tests.support.tool_receivers import free_port

NODE_START_TIMEOUT_S = 60
# A crashed loop (the node exits), an unhandled task error, a job path that crashed, log
# lines given up: none of these is an acceptable answer to a fault.
TROUBLE_MARKS = (
    "Task exception was never retrieved",
    "unhandled errors in a TaskGroup",
    "crashed the worker path",
    "ERROR cronium.logs: dropped",  # "dropped N log lines of execution …"
)
# A node stops within its drain grace plus a few seconds; this is far beyond that.
STOP_TIMEOUT_S = 60


class PrivatePostgres:
    """A PostgreSQL server of our own, started from the embedded-server code, restartable.

    It lives under /tmp rather than pytest's tmp_path because, as root, the server runs as an
    unprivileged user who must be able to enter every parent directory.
    """

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="crn-chaos-pg-"))
        self.home.chmod(0o755)
        self.server = EmbeddedPostgres(self.home)
        self.url = ""

    async def start(self) -> str:
        self.url = await asyncio.to_thread(self.server.start)
        return self.url

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    def remove(self) -> None:
        self.server.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    @property
    def asyncpg_dsn(self) -> str:
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)


class NodeProcess:
    """One `cronium serve` process with the api, scheduler and worker roles."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**env, "CRONIUM_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        socket_dir = tempfile.mkdtemp(prefix="crn-")  # socket paths are limited to ~100 bytes
        env = {**self.env, "CRONIUM_RUNTIME_SOCKET": f"{socket_dir}/rt.sock"}
        with self.log_path.open("ab") as log_file:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cronium", "serve", "--roles", "api,scheduler,worker"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    async def wait_ready(self) -> None:
        """Until /health answers, so a kill lands on a node that had a chance to work."""
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(f"node {self.name} exited: {self.tail()}")
                try:
                    if (await client.get("/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(
            f"node {self.name} not ready in {NODE_START_TIMEOUT_S} s: {self.tail()}"
        )

    def kill9(self) -> None:
        """SIGKILL; a node that had already exited on its own is a failure, not a kill."""
        if self.proc is not None:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"node {self.name} exited on its own (code {self.proc.returncode}):\n"
                    f"{self.tail(60)}"
                )
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1
        self.proc = None

    def trouble(self) -> list[str]:
        """Log lines that mean something went wrong beyond the faults injected on purpose."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [
            f"node {self.name}: {line.strip()[:300]}"
            for line in text.splitlines()
            if any(mark in line for mark in TROUBLE_MARKS)
        ]

    def assert_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"node {self.name} is not running:\n{self.tail(60)}")

    async def stop(self) -> bool:
        """A graceful stop (SIGTERM drains running jobs); False if it hung and was killed."""
        if self.proc is None:
            return True
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return False
        return True

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def node_env(database_url: str, data_root: Path, valkey_url: str, **extra: str) -> dict[str, str]:
    """The environment every node of one installation shares (same keys, same database)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRONIUM_", "DATABASE_URL"))}
    return {
        **base,
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "CRONIUM_DATA_DIR": str(data_root),
        "CRONIUM_EXECUTOR": "local",
        "CRONIUM_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "CRONIUM_SECRET_KEY": secrets.token_urlsafe(40),
        "CRONIUM_LOG_LEVEL": "info",
        **extra,
    }


def cli(env: dict[str, str], *args: str) -> str:
    """Run a `cronium` command against the cluster's database; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "cronium", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"cronium {args[0]} failed: {done.stderr or done.stdout}")
    return done.stdout.strip()
