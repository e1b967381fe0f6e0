"""The `ssh` executor: a script on the user's server, with the same SDK and live logs.

Per job, on a pooled connection: check the interpreter and make a private job dir
(`mktemp -d`, umask 077) in one command; forward a Unix socket in that dir to our Runtime
API socket (a path per job, so no two jobs share a port); upload the script, the SDK,
the runner and the environment over SFTP (files 0600); start `sh run.sh` (see
ssh_runner.sh). Secrets travel only inside the SFTP stream. Timeouts and cancels reach
the remote process group through the runner's stdin; a lost connection ends the job at
once (or within the keepalive bound) and the runner kills what is left on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import asyncssh

from cronium.db.models import JobStatus, LogStream
from cronium.executors.base import Executor, ExecutorError, JobResult, JobSpec, LineSink
from cronium.executors.ssh_connect import PooledConnection, SshError, SshPool, where
from cronium.logs.capture import LineSplitter
from cronium.sdk import preload_env, sdk_files

log = logging.getLogger("cronium.executors.ssh")

_INTERPRETERS = {"bash": ("bash",), "python": ("python3", "-u"), "node": ("node",)}
_NO_FORWARD_URL = "unix:///nonexistent/cronium-runtime-forwarding-refused.sock"
_SDK_DIRS = {"bash": "bash", "python": "python", "node": "node"}
# Only the job's language's pre-load variables: NODE_OPTIONS naming a file that was not
# uploaded would stop every `node` the script starts.
_PRELOAD_KEYS = {
    "bash": ("BASH_ENV",),
    "python": ("PYTHONPATH",),
    "node": ("NODE_PATH", "NODE_OPTIONS"),
}
_SCRIPT_NAMES = {"bash": "script.sh", "python": "script.py", "node": "script.js"}
_READ_CHUNK = 64 * 1024
_CHANNEL_WINDOW_BYTES = 256 * 1024
_MISSING_INTERPRETER = 97
_MISSING_SETSID = 98
RUNNER = files("cronium.executors").joinpath("ssh_runner.sh").read_bytes()


@dataclass
class SshHandle:
    spec: JobSpec
    pooled: PooledConnection
    workdir: str
    process: asyncssh.SSHClientProcess[bytes] | None = None
    listener: asyncssh.SSHListener | None = None
    warnings: list[str] = field(default_factory=list)
    runner_done: bool = False  # the runner exited: it removed the job dir itself
    output_done: asyncio.Event = field(default_factory=asyncio.Event)


class SshExecutor(Executor[SshHandle]):
    mode = "ssh"

    def __init__(self, pool: SshPool, *, command_timeout_s: float = 30.0) -> None:
        self.pool = pool
        self.command_timeout_s = command_timeout_s
        # Per language, the SDK files a run needs (no type declarations).
        self._sdk = {
            language: {
                path: content
                for path, content in sdk_files().items()
                if path.startswith(f"{folder}/") and not path.endswith(".d.ts")
            }
            for language, folder in _SDK_DIRS.items()
        }

    async def run(self, spec: JobSpec, sink: LineSink, cancel: asyncio.Event) -> JobResult:
        """Wait for a slot on the server (its max_concurrent_jobs), then run."""
        server = spec.server
        if server is None:
            raise ExecutorError("an SSH job without a server", permanent=True)
        slot = self.pool.slot(server)
        if slot.locked():
            await sink(
                LogStream.system,
                f"waiting for a free slot on {server.name} "
                f"(at most {server.max_concurrent_jobs} jobs at once)",
            )
        acquired = asyncio.ensure_future(slot.acquire())
        cancelled = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait({acquired, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if not acquired.done() or cancel.is_set():
            if acquired.done() and not acquired.cancelled():
                slot.release()
            acquired.cancel()
            return JobResult(JobStatus.cancelled, error="cancelled while waiting for a slot")
        try:
            for attempt in (1, 2):
                async with self.pool.lease(server) as pooled:
                    try:
                        return await self._run_on(spec, pooled, sink, cancel)
                    except _NotStarted as exc:
                        # A pooled connection can die unnoticed between jobs: one fresh try.
                        pooled.close()
                        if attempt == 2:
                            raise SshError(exc.code, exc.message) from None
            raise AssertionError("unreachable")
        except ExecutorError:
            raise
        except Exception as exc:
            # A surprise from the SSH stack must end the job, not leave it to lease expiry.
            log.exception("ssh job %s failed unexpectedly", spec.job_id)
            raise SshError("ssh_error", f"SSH run on {where(server)} failed: {exc!r}") from exc
        finally:
            slot.release()

    async def _run_on(
        self, spec: JobSpec, pooled: PooledConnection, sink: LineSink, cancel: asyncio.Event
    ) -> JobResult:
        handle = await self._prepare(spec, pooled)
        try:
            await self._start_runner(handle)
            for warning in handle.warnings:
                await sink(LogStream.system, warning)
            return await self._supervise(spec, handle, sink, cancel)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise self._lost(handle, exc) from None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.cleanup(handle))

    # -- Executor transport ------------------------------------------------------------

    async def start(self, spec: JobSpec) -> SshHandle:  # pragma: no cover - run() is used
        raise NotImplementedError("SshExecutor.run leases a connection first")

    async def _prepare(self, spec: JobSpec, pooled: PooledConnection) -> SshHandle:
        assert spec.server is not None
        server = spec.server
        if spec.language not in _INTERPRETERS:
            raise ExecutorError(f"unsupported language {spec.language!r}", permanent=True)
        interpreter = _INTERPRETERS[spec.language][0]
        probe = (
            "umask 077; "
            f"command -v {interpreter} >/dev/null 2>&1 || exit {_MISSING_INTERPRETER}; "
            f"command -v setsid >/dev/null 2>&1 || exit {_MISSING_SETSID}; "
            f'd=$(mktemp -d "${{TMPDIR:-/tmp}}/cronium-job-{spec.job_id}-XXXXXXXX") && '
            f'mkdir "$d/sdk" "$d/sdk/{_SDK_DIRS[spec.language]}" && echo "$d"'
        )
        try:
            result = await asyncio.wait_for(
                pooled.conn.run(probe, check=False, encoding="utf-8"),
                timeout=self.command_timeout_s,
            )
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise self._lost_before_start(spec, exc) from None
        if result.exit_status == _MISSING_INTERPRETER:
            raise SshError(
                "interpreter_missing",
                f"{interpreter} is not installed on {where(server)}: install it there or "
                "run the event elsewhere",
                permanent=True,
            )
        if result.exit_status == _MISSING_SETSID:
            raise SshError(
                "interpreter_missing",
                f"setsid (util-linux) is missing on {where(server)}: Cronium needs it to "
                "stop jobs cleanly",
                permanent=True,
            )
        workdir = str(result.stdout or "").strip()
        if result.exit_status != 0 or not workdir.startswith("/") or "\n" in workdir:
            detail = str(result.stderr or "").strip()[:300]
            raise SshError("ssh_error", f"cannot make a job directory on {where(server)}: {detail}")
        return SshHandle(spec, pooled, workdir)

    async def _start_runner(self, handle: SshHandle) -> None:
        spec, conn, workdir = handle.spec, handle.pooled.conn, handle.workdir
        assert spec.language is not None and spec.server is not None
        local_socket = spec.runtime_env.get("CRONIUM_RUNTIME_URL", "").removeprefix("unix://")
        runtime_url = spec.runtime_env.get("CRONIUM_RUNTIME_URL", "")
        forward = None
        if local_socket and runtime_url.startswith("unix://"):
            forward = asyncio.ensure_future(
                conn.forward_remote_path(f"{workdir}/rt.sock", local_socket)
            )
        preload = preload_env(f"{workdir}/sdk")
        env = {
            **{key: preload[key] for key in _PRELOAD_KEYS[spec.language]},
            "PYTHONUNBUFFERED": "1",
            **spec.env,
            **spec.runtime_env,
            "CRONIUM_RUNTIME_URL": f"unix://{workdir}/rt.sock" if forward else runtime_url,
        }
        script = _SCRIPT_NAMES[spec.language]
        uploads: dict[str, bytes] = {
            "run.sh": RUNNER,
            script: spec.content.encode(),
            **{f"sdk/{path}": content for path, content in self._sdk[spec.language].items()},
        }
        upload = asyncio.ensure_future(
            asyncio.wait_for(self._upload(handle, uploads), timeout=self.command_timeout_s)
        )
        try:
            if forward is not None:
                try:
                    handle.listener = await forward
                except asyncssh.ChannelListenError:
                    # The job still runs; only its SDK calls fail, loudly, with this reason.
                    handle.warnings.append(
                        f"{where(spec.server)} refused to forward a Unix socket, so the "
                        "SDK cannot reach Cronium: allow it in sshd_config "
                        "(AllowStreamLocalForwarding yes and AllowTcpForwarding yes or remote)"
                    )
                    env["CRONIUM_RUNTIME_URL"] = _NO_FORWARD_URL
            # The env file (token, secrets) once we know the runtime URL, beside the rest.
            env_upload = self._upload(handle, {"env": env_file(env)})
            await asyncio.gather(upload, asyncio.wait_for(env_upload, self.command_timeout_s))
        finally:
            for task in (forward, upload):
                if task is not None and not task.done():
                    task.cancel()
        command = " ".join(
            shlex.quote(part)
            for part in ("exec", "sh", f"{workdir}/run.sh", *_INTERPRETERS[spec.language], script)
        )
        # A small window paces the script by how fast its lines are stored, as a pipe does
        # locally: with asyncssh's 2 MiB default the script could end with megabytes still
        # in flight, more than the post-exit drain waits for.
        handle.process = await conn.create_process(
            command, encoding=None, window=_CHANNEL_WINDOW_BYTES
        )

    async def _upload(self, handle: SshHandle, uploads: dict[str, bytes]) -> None:
        sftp = await handle.pooled.sftp()

        async def put(relative: str, content: bytes) -> None:
            async with sftp.open(
                f"{handle.workdir}/{relative}",
                "wb",
                asyncssh.SFTPAttrs(permissions=0o600),
            ) as remote:
                await remote.write(content)

        await asyncio.gather(*(put(path, content) for path, content in uploads.items()))

    async def stream(self, handle: SshHandle, sink: LineSink) -> None:
        process = handle.process
        assert process is not None
        try:
            await asyncio.gather(
                _pump(process.stdout, LogStream.stdout, sink),
                _pump(process.stderr, LogStream.stderr, sink),
            )
        finally:
            handle.output_done.set()

    async def wait(self, handle: SshHandle) -> int:
        process = handle.process
        assert process is not None
        # Read the output to its end first: asyncssh drops what is still buffered once the
        # channel is waited closed, so waiting alongside the readers loses the tail.
        await handle.output_done.wait()
        completed = await process.wait(check=False)
        if completed.exit_status is None or completed.exit_status < 0:
            if completed.exit_signal is not None:
                return 128 + _signal_number(completed.exit_signal[0])
            raise self._lost(handle, None)
        handle.runner_done = True
        return completed.exit_status

    async def terminate(self, handle: SshHandle) -> None:
        await self._control(handle, b"TERM\n")

    async def kill(self, handle: SshHandle) -> None:
        await self._control(handle, b"KILL\n")

    async def cleanup(self, handle: SshHandle) -> None:
        """End the runner (stdin EOF kills the group), close the forward, remove the dir."""
        if handle.process is not None:
            with contextlib.suppress(Exception):
                handle.process.stdin.write_eof()
            handle.process.close()
        if handle.listener is not None:
            handle.listener.close()
        if handle.pooled.alive and not handle.runner_done:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    handle.pooled.conn.run(f"rm -rf {shlex.quote(handle.workdir)}", check=False),
                    timeout=self.command_timeout_s,
                )

    # -- helpers -----------------------------------------------------------------------

    async def _control(self, handle: SshHandle, line: bytes) -> None:
        if handle.process is None:
            return
        with contextlib.suppress(Exception):
            handle.process.stdin.write(line)
            await handle.process.stdin.drain()

    def _lost(self, handle: SshHandle, exc: BaseException | None) -> SshError:
        assert handle.spec.server is not None
        error = SshError(
            "connection_lost",
            f"connection to {where(handle.spec.server)} lost during the run"
            + (f": {_reason(exc)}" if exc is not None else ""),
        )
        handle.pooled.close()
        self.pool.failed(handle.spec.server, error)
        return error

    def _lost_before_start(self, spec: JobSpec, exc: BaseException) -> SshError:
        assert spec.server is not None
        error = _NotStarted(
            "connection_lost",
            f"connection to {where(spec.server)} lost while preparing the job: {_reason(exc)}",
        )
        self.pool.failed(spec.server, error)
        return error


class _NotStarted(SshError):
    """The connection failed before anything ran on the host: safe to try again."""


def env_file(env: dict[str, str]) -> bytes:
    """`KEY='value'` lines for `sh`; keys that are not shell names are left out."""
    lines = [
        f"{key}={shlex.quote(value)}\n"
        for key, value in env.items()
        if key.replace("_", "a").isalnum() and not key[0].isdigit() and key.isascii()
    ]
    return "".join(lines).encode()


async def _pump(reader: Any, stream: LogStream, sink: LineSink) -> None:
    splitter = LineSplitter()
    while True:
        chunk = await reader.read(_READ_CHUNK)
        if not chunk:
            break
        for line in splitter.feed(chunk):
            await sink(stream, line)
    for line in splitter.flush():
        await sink(stream, line)


def _signal_number(name: str) -> int:
    import signal

    with contextlib.suppress(KeyError):
        return int(signal.Signals[f"SIG{name}"])
    return 0


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) if exc else ""
