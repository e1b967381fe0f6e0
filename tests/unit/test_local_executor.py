"""The local executor leaves nothing running once a job has ended."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from cronium.db.models import JobStatus, LogStream
from cronium.executors.base import JobSpec
from cronium.executors.local import SWEEP_INTERVAL_S, LocalExecutor


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that does not reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _spec(content: str, job_id: int) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        execution_id=job_id,
        event_id=1,
        event_name="escape",
        kind="script",
        target="local",
        timeout_s=30,
        language="bash",
        content=content,
        installation_id="test-local-executor",
    )


async def _no_output(_stream: LogStream, _line: str) -> None:
    return None


async def test_a_process_that_left_the_job_session_is_killed_soon_after_the_job(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"setsid bash -c 'echo $$ > {pid_file}; exec sleep 60' >/dev/null 2>&1 &\n"
        f"while [ ! -s {pid_file} ]; do sleep 0.01; done\n"
    )
    result = await LocalExecutor().run(_spec(script, 9101), _no_output, asyncio.Event())
    pid = int(pid_file.read_text())
    try:
        assert result.status is JobStatus.succeeded
        deadline = time.monotonic() + SWEEP_INTERVAL_S + 2.0
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not _alive(pid), "the escaped process outlived its job"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_the_escaped_processes_of_jobs_that_end_together_are_all_killed(
    tmp_path: Path,
) -> None:
    scripts = []
    for i in range(3):
        pid_file = tmp_path / f"pid{i}"
        scripts.append(
            (
                pid_file,
                f"setsid bash -c 'echo $$ > {pid_file}; exec sleep 60' >/dev/null 2>&1 &\n"
                f"while [ ! -s {pid_file} ]; do sleep 0.01; done\n",
            )
        )
    executor = LocalExecutor()
    await asyncio.gather(
        *(
            executor.run(_spec(script, 9200 + i), _no_output, asyncio.Event())
            for i, (_f, script) in enumerate(scripts)
        )
    )
    pids = [int(f.read_text()) for f, _s in scripts]
    try:
        deadline = time.monotonic() + SWEEP_INTERVAL_S + 2.0
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not any(map(_alive, pids))
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
