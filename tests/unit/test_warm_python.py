"""Python jobs forked from the warm interpreter behave as if `python3 -u script` ran them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cronium.db.models import JobStatus, LogStream
from cronium.executors.base import JobResult, JobSpec
from cronium.executors.local import LocalExecutor

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="Linux only")


def spec(content: str, job_id: int = 1, **fields: object) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        execution_id=job_id,
        event_id=1,
        event_name="warm",
        kind="script",
        target="local",
        timeout_s=float(fields.pop("timeout_s", 30)),  # type: ignore[arg-type]
        language="python",
        content=content,
        installation_id="test-warm-python",
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
async def executor() -> AsyncIterator[LocalExecutor]:
    ex = LocalExecutor(warm_python=True)
    yield ex
    await ex.aclose()


async def run(ex: LocalExecutor, job: JobSpec) -> tuple[JobResult, list[tuple[str, str]]]:
    lines: list[tuple[str, str]] = []

    async def sink(stream: LogStream, line: str) -> None:
        lines.append((stream.value, line))

    return await ex.run(job, sink, asyncio.Event()), lines


async def test_a_forked_job_looks_like_a_fresh_interpreter(executor: LocalExecutor) -> None:
    script = """
import json, os, sys
print(json.dumps({
    "name": __name__,
    "argv0": os.path.basename(sys.argv[0]),
    "cwd_is_script_dir": os.getcwd() == os.path.dirname(sys.argv[0]),
    "path0": sys.path[0] == os.path.dirname(sys.argv[0]),
    "mine": os.environ.get("MINE"),
    "leak": [k for k in os.environ if k in ("DATABASE_URL", "CRONIUM_SECRET_KEY")],
    "sid_is_pid": os.getsid(0) == os.getpid(),
    "ppid": os.getppid(),
}))
"""
    result, lines = await run(executor, spec(script, env={"MINE": "yes"}))
    assert result.status is JobStatus.succeeded, lines
    seen = json.loads(lines[0][1])
    assert seen["name"] == "__main__" and seen["argv0"] == "script.py"
    assert seen["cwd_is_script_dir"] and seen["path0"]
    assert seen["mine"] == "yes" and seen["leak"] == []
    assert seen["sid_is_pid"]  # its own session and process group
    assert seen["ppid"] != os.getpid()  # forked by the warm interpreter, not spawned


async def test_exit_codes_tracebacks_atexit_and_threads(executor: LocalExecutor) -> None:
    result, _ = await run(executor, spec("import sys; sys.exit(3)"))
    assert (result.status, result.exit_code) == (JobStatus.failed, 3)
    result, lines = await run(executor, spec("raise ValueError('boom')", job_id=2))
    assert result.exit_code == 1
    assert ("stderr", "ValueError: boom") in lines
    script = """
import atexit, threading, time
atexit.register(lambda: print("atexit ran", flush=True))
def late():
    time.sleep(0.2)
    print("thread done", flush=True)
threading.Thread(target=late).start()
print("main done")
"""
    result, lines = await run(executor, spec(script, job_id=3))
    assert result.status is JobStatus.succeeded
    assert [line for _, line in lines] == ["main done", "thread done", "atexit ran"]


async def test_a_job_with_its_own_pythonpath_gets_a_new_interpreter(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    (tmp_path / "helper_mod.py").write_text("VALUE = 42\n")
    script = "import os, helper_mod; print(helper_mod.VALUE, os.getppid())"
    result, lines = await run(executor, spec(script, env={"PYTHONPATH": str(tmp_path)}))
    assert result.status is JobStatus.succeeded, lines
    value, parent = lines[0][1].split()
    assert value == "42"
    assert int(parent) == os.getpid()  # spawned by this process (after setpriv's exec)


async def test_a_timeout_kills_the_forked_job_and_its_children(executor: LocalExecutor) -> None:
    script = "import subprocess, time\nsubprocess.Popen(['sleep', '307'])\ntime.sleep(60)"
    result, _ = await run(executor, spec(script, timeout_s=1, kill_grace_s=1))
    assert result.status is JobStatus.timed_out
    await asyncio.sleep(0.3)
    assert _running("sleep 307") == []


async def test_a_dead_warm_interpreter_is_replaced(executor: LocalExecutor) -> None:
    result, _ = await run(executor, spec("print('first')"))
    assert result.status is JobStatus.succeeded
    warm = executor._warm
    assert warm is not None and warm._process is not None
    os.kill(warm._process.pid, signal.SIGKILL)
    await warm._process.wait()
    result, lines = await run(executor, spec("print('second')", job_id=2))
    assert result.status is JobStatus.succeeded and ("stdout", "second") in lines


def _running(command: str) -> list[str]:
    return [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == command]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
