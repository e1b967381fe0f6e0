"""A node killed with SIGKILL mid-run: another node notices within the lease bound and
fails or retries its jobs by their policy; nothing of the dead node's job keeps running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cronium.core import Core
from cronium.engine.node import Node
from cronium.executors.base import job_marker_prefix
from cronium.executors.registry import local_only
from tests.conftest import Api, wait_for_status

pytestmark = pytest.mark.slow


def start_worker_node(database_url: str, data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRONIUM_", "DATABASE_URL"))}
    # The local executor: the scripts below rely on files of this host.
    env = {
        **base,
        "DATABASE_URL": database_url,
        "CRONIUM_DATA_DIR": str(data_dir),
        "CRONIUM_EXECUTOR": "local",
        # Unix socket paths are limited to ~100 bytes; pytest's tmp paths are long.
        "CRONIUM_RUNTIME_SOCKET": f"{tempfile.mkdtemp(prefix='crn-')}/rt.sock",
    }
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "cronium", "serve", "--roles", "worker"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


async def wait_running_elsewhere(
    core: Core, execution_id: int, own_node: str, timeout_s: float = 30
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with core.db.acquire() as conn:
            owner = await conn.fetchval(
                "SELECT lease_owner FROM jobs WHERE execution_id = $1 AND status = 'running'",
                execution_id,
            )
        if owner and owner != own_node:
            return str(owner)
        await asyncio.sleep(0.1)
    raise AssertionError("the job never started on the other node")


def pids_with_marker(installation_id: str, job_id: int) -> list[int]:
    prefix = f"CRONIUM_JOB_MARKER={job_marker_prefix(installation_id, job_id)}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(v.startswith(prefix) for v in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


async def run_and_kill(
    api: Api, core: Core, database_url: str, tmp_path: Path, **event: object
) -> tuple[int, int, float]:
    """Start an event on a separate node process, SIGKILL that process; return ids and kill time."""
    resp = await api.post("/events", json={"name": "crashy", "language": "bash", **event})
    assert resp.status_code == 201, resp.text
    proc = start_worker_node(database_url, tmp_path / "other-node", tmp_path / "other-node.log")
    try:
        run = await api.post(f"/events/{resp.json()['id']}/run")
        execution_id = int(run.json()["execution_id"])
        await wait_running_elsewhere(core, execution_id, core.node_id)
        await asyncio.sleep(0.5)  # let the script start
        async with core.db.acquire() as conn:
            job_id = int(
                await conn.fetchval("SELECT id FROM jobs WHERE execution_id = $1", execution_id)
            )
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return execution_id, job_id, killed_at


async def test_a_killed_nodes_job_fails_within_15_seconds(
    api: dict[str, Api], core: Core, database_url: str, tmp_path: Path
) -> None:
    execution_id, job_id, killed_at = await run_and_kill(
        api["user"], core, database_url, tmp_path, content="echo started; sleep 120"
    )
    node = Node(core, frozenset({"worker"}), local_only())
    task = asyncio.create_task(node.run())
    try:
        done = await wait_for_status(api["user"], execution_id, timeout_s=20)
        detected_s = time.monotonic() - killed_at
        assert done["status"] == "failed"
        assert "stopped renewing its lease" in (done["jobs"][0]["error"] or "")
        assert detected_s <= 15, detected_s
        await asyncio.sleep(0.2)
        assert pids_with_marker(core.installation_id, job_id) == [], (
            "the dead node's script is still running"
        )
    finally:
        node.stop()
        await asyncio.wait_for(task, timeout=30)


async def test_a_killed_nodes_job_is_retried_on_another_node(
    api: dict[str, Api], core: Core, database_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "first-attempt-ran"
    script = f"if [ -e {marker} ]; then echo second attempt; exit 0; fi; touch {marker}; sleep 120"
    execution_id, _, _ = await run_and_kill(
        api["user"],
        core,
        database_url,
        tmp_path,
        content=script,
        retries=1,
        retry_backoff_seconds=0,
    )
    node = Node(core, frozenset({"worker"}), local_only())
    task = asyncio.create_task(node.run())
    try:
        done = await wait_for_status(api["user"], execution_id, timeout_s=25)
        assert done["status"] == "succeeded", done
        assert done["jobs"][0]["attempt"] == 2
        logs = (await api["user"].get(f"/executions/{execution_id}/logs")).json()["items"]
        assert "second attempt" in [line["line"] for line in logs]
    finally:
        node.stop()
        await asyncio.wait_for(task, timeout=30)
