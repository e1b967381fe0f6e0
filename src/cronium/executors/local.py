"""The `local` executor: a subprocess in its own process group and private temp dir.

Not isolated: scripts run as the Cronium user. Used when Docker is absent, or on request.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from cronium.db.models import LogStream
from cronium.executors.base import Executor, ExecutorError, JobSpec, LineSink, job_marker_prefix
from cronium.executors.warm_python import ForkedProcess, WarmPython
from cronium.executors.warm_python import available as warm_python_available
from cronium.logs.capture import LineSplitter
from cronium.sdk import SDK_DIR, preload_env

log = logging.getLogger("cronium.executors")

_SCRIPT_NAMES = {"bash": "script.sh", "python": "script.py", "node": "script.js"}
_READ_CHUNK = 64 * 1024


def interpreter(language: str) -> list[str]:
    """The command that runs a script of `language` on this host."""
    if language == "bash":
        found = shutil.which("bash")
        if found is None:
            raise ExecutorError("bash is not installed on this host", permanent=True)
        return [found]
    if language == "python":
        found = shutil.which("python3")
        if found is None:
            return [sys.executable, "-u"]
        return [_real_program(found, "import sys; print(sys.executable)"), "-u"]
    if language == "node":
        found = shutil.which("node") or shutil.which("nodejs")
        if found is None:
            raise ExecutorError(
                "node is not installed on this host: install Node.js or use Docker", permanent=True
            )
        return [_real_program(found, "console.log(process.execPath)")]
    raise ExecutorError(f"unsupported language {language!r}", permanent=True)


@functools.cache
def _real_program(found: str, print_own_path: str) -> str:
    """The binary behind a wrapper script on PATH (pyenv's or nvm's shims), asked once.

    A shim is a shell script that looks up the version to run on every start: about
    100 ms per job here, more than the interpreter itself.
    """
    try:
        with open(found, "rb") as program:
            if program.read(2) != b"#!":
                return found
        answer = subprocess.run(
            [found, "-c" if "sys" in print_own_path else "-e", print_own_path],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return found
    return answer if answer and os.access(answer, os.X_OK) else found


def _sdk_env() -> dict[str, str]:
    return preload_env(str(SDK_DIR))


def base_env(workdir: Path) -> dict[str, str]:
    """A clean environment: nothing of Cronium's own (no DATABASE_URL, no keys) leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class LocalHandle:
    process: asyncio.subprocess.Process | ForkedProcess
    workdir: Path
    job_marker: str
    pgid: int
    extra: dict[str, str] = field(default_factory=dict)


class LocalExecutor(Executor[LocalHandle]):
    mode = "local"

    def __init__(self, *, warm_python: bool = True) -> None:
        # Python jobs fork from a warm interpreter (see warm_python.py) unless told not to.
        self._warm_python = warm_python and warm_python_available()
        self._warm: WarmPython | None = None

    def _warm_for(self, command: list[str]) -> WarmPython | None:
        if not self._warm_python:
            return None
        if self._warm is None or self._warm.command != command:
            start_env = {**base_env(Path(tempfile.gettempdir())), **_sdk_env()}
            self._warm = WarmPython(command, start_env)
        return self._warm

    async def release(self) -> None:
        """Stop the warm interpreter (it starts again on the next Python job)."""
        if self._warm is not None:
            await self._warm.aclose()

    async def aclose(self) -> None:
        await self.release()

    async def start(self, spec: JobSpec) -> LocalHandle:
        if spec.language is None:
            raise ExecutorError("script event without a language", permanent=True)
        _watch_children_by_pidfd()
        # setpriv sets PR_SET_PDEATHSIG in the child (the script dies with Cronium) without a
        # preexec_fn, which would force fork() instead of vfork() and stall the event loop.
        command = [*_PDEATHSIG_PREFIX, *interpreter(spec.language)]
        workdir = Path(tempfile.mkdtemp(prefix=f"cronium-job-{spec.job_id}-"))
        (workdir / "tmp").mkdir(mode=0o700)
        script = workdir / _SCRIPT_NAMES[spec.language]
        script.write_text(spec.content)
        script.chmod(0o600)
        marker = job_marker_prefix(spec.installation_id, spec.job_id) + os.urandom(6).hex()
        env = {
            **base_env(workdir),
            **preload_env(str(SDK_DIR)),
            **spec.env,
            **spec.runtime_env,
            "CRONIUM_JOB_MARKER": marker,
        }
        warm = self._warm_for(command) if spec.language == "python" else None
        if warm is not None and warm.suits(env):
            try:
                forked = await warm.start(script, workdir, env)
                return LocalHandle(forked, workdir, marker, pgid=forked.pid)
            except (OSError, ConnectionError, TimeoutError) as exc:
                log.warning("warm Python not available (%s): starting a new interpreter", exc)
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                str(script),
                cwd=workdir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise ExecutorError(
                f"cannot start {command[0]}: {exc.strerror}", permanent=True
            ) from exc
        return LocalHandle(process, workdir, marker, pgid=process.pid)

    async def stream(self, handle: LocalHandle, sink: LineSink) -> None:
        proc = handle.process
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(
            _pump(proc.stdout, LogStream.stdout, sink), _pump(proc.stderr, LogStream.stderr, sink)
        )

    async def wait(self, handle: LocalHandle) -> int:
        code = await handle.process.wait()
        # The script is done: whatever it left running in its group goes too, so the
        # pipes close and nothing outlives the job.
        _signal_group(handle.pgid, signal.SIGKILL)
        return code

    async def terminate(self, handle: LocalHandle) -> None:
        _signal_group(handle.pgid, signal.SIGTERM)

    async def kill(self, handle: LocalHandle) -> None:
        _signal_group(handle.pgid, signal.SIGKILL)
        _kill_marked(handle.job_marker)

    async def cleanup(self, handle: LocalHandle) -> None:
        _signal_group(handle.pgid, signal.SIGKILL)
        # Processes that left the group with setsid still carry the job marker: one shared
        # /proc sweep soon after kills them for every job that ended meanwhile.
        _SWEEPER.request(handle.job_marker)
        if handle.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                handle.process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.process.wait(), timeout=5)
        if isinstance(handle.process, ForkedProcess):
            handle.process.close()
        await asyncio.to_thread(shutil.rmtree, handle.workdir, True)


async def _pump(reader: asyncio.StreamReader, stream: LogStream, sink: LineSink) -> None:
    splitter = LineSplitter()
    while True:
        chunk = await reader.read(_READ_CHUNK)
        if not chunk:
            break
        for line in splitter.feed(chunk):
            await sink(stream, line)
    for line in splitter.flush():
        await sink(stream, line)


_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
_PDEATHSIG_PREFIX = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []


def _watch_children_by_pidfd() -> None:
    """On Python 3.11, wait for scripts through pidfds instead of one thread per script.

    The default watcher there starts a thread per child and made each spawn cost about
    1.5 ms of the event loop; 3.12 uses pidfds itself. Main thread only: the watcher
    follows the main thread's loop (asyncio re-attaches it to each new one).
    """
    if sys.version_info >= (3, 12) or threading.current_thread() is not threading.main_thread():
        return
    policy = asyncio.get_event_loop_policy()
    if not isinstance(policy, asyncio.DefaultEventLoopPolicy):
        return  # another loop (uvloop) watches its children itself
    current = policy.get_child_watcher()
    if isinstance(current, asyncio.PidfdChildWatcher):
        if not current.is_active():  # still bound to a loop that has ended
            current.attach_loop(asyncio.get_running_loop())
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return  # a kernel older than 5.3: keep the default
    watcher = asyncio.PidfdChildWatcher()
    policy.set_child_watcher(watcher)
    watcher.attach_loop(asyncio.get_running_loop())


def kill_job_processes(installation_id: str, job_id: int) -> None:
    """SIGKILL every process of this installation's job `job_id` on this host, any attempt.

    Recovery calls this when a node died: its scripts may still run on this machine.
    """
    _kill_marked(job_marker_prefix(installation_id, job_id), prefix=True)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


_MARKER_VAR = b"CRONIUM_JOB_MARKER="
# Escaped processes of a finished job live at most about this long.
SWEEP_INTERVAL_S = 0.1


def _kill_marked(marker: str, *, prefix: bool = False) -> None:
    """SIGKILL every process whose environment carries this job's marker (Linux /proc)."""
    _kill_marked_any({marker}, prefix=prefix)


def _kill_marked_any(markers: Collection[str], *, prefix: bool = False) -> None:
    """One /proc scan: SIGKILL every process whose environment carries one of `markers`."""
    needles = {_MARKER_VAR + m.encode() for m in markers}
    proc_dir = Path("/proc")
    if not needles or not proc_dir.is_dir():
        return
    own = os.getpid()
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if _MARKER_VAR not in environ:
            continue
        variables = environ.split(b"\0")
        if prefix:
            matched = any(v.startswith(n) for v in variables for n in needles)
        else:
            matched = not needles.isdisjoint(variables)
        if matched:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


class _Sweeper:
    """Kills escaped processes of finished jobs with one /proc scan per interval.

    A scan reads every process's environment (about a millisecond per hundred processes);
    once per job it was a large share of a trivial job's cost. Markers wait at most
    SWEEP_INTERVAL_S, and whatever is pending when the process exits is swept then.
    """

    def __init__(self) -> None:
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        atexit.register(self.sweep_now)

    def request(self, marker: str) -> None:
        self._pending.add(marker)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._sweep_later(), name="local-process-sweeper")

    async def _sweep_later(self) -> None:
        while self._pending:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            markers = set(self._pending)
            await asyncio.to_thread(_kill_marked_any, markers)
            self._pending -= markers

    def sweep_now(self) -> None:
        _kill_marked_any(set(self._pending))
        self._pending.clear()


_SWEEPER = _Sweeper()
