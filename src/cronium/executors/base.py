"""What every executor shares: the job it is given, how it reports, and the run template.

An executor adds only its transport (`start`, `stream`, `wait`, `terminate`, `kill`,
`cleanup`). Timeouts, cancellation and the SIGTERM → grace → SIGKILL sequence live once,
in `Executor.run`, so no executor can get the units or the order wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cronium.db.models import JobStatus, LogStream
from cronium.errors import CroniumError

log = logging.getLogger("cronium.executors")

DEFAULT_KILL_GRACE_S = 5.0


class ExecutorError(CroniumError):
    """A job could not run. `permanent` errors are not retried (bad image, missing interpreter)."""

    code = "executor_error"

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ServerSpec:
    """One SSH server as the ssh executor needs it: address, decrypted credentials, pin."""

    server_id: int
    name: str
    host: str
    port: int
    username: str
    auth_type: str  # key | password
    secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)
    host_key: str | None = None  # OpenSSH public key line, pinned on first contact
    host_key_fingerprint: str | None = None  # SHA256:… given by the user or pinned
    max_concurrent_jobs: int = 4


@dataclass(frozen=True)
class JobSpec:
    """Everything an executor needs, decrypted and resolved by the engine."""

    job_id: int
    execution_id: int
    event_id: int
    event_name: str
    kind: str  # script | http | tool
    target: str
    timeout_s: float
    language: str | None = None
    content: str = ""
    env: dict[str, str] = field(default_factory=dict)
    runtime_env: dict[str, str] = field(default_factory=dict)
    input: Any = None
    http: dict[str, Any] | None = None
    image: str | None = None
    cpu: float | None = None
    memory_mb: int | None = None
    pids: int | None = None
    network: bool = False
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    installation_id: str = ""
    server: ServerSpec | None = None


@dataclass
class JobResult:
    status: JobStatus
    exit_code: int | None = None
    error: str | None = None
    output: Any = None


LineSink = Callable[[LogStream, str], Awaitable[None]]

H = TypeVar("H")


class Executor(ABC, Generic[H]):
    """Template for executors that run a process somewhere and stream its output."""

    mode: str = "base"

    @abstractmethod
    async def start(self, spec: JobSpec) -> H:
        """Start the job; raise ExecutorError if it cannot start."""

    @abstractmethod
    async def stream(self, handle: H, sink: LineSink) -> None:
        """Send every output line to `sink` until the output ends."""

    @abstractmethod
    async def wait(self, handle: H) -> int:
        """Wait for the process to exit; return its exit code."""

    @abstractmethod
    async def terminate(self, handle: H) -> None:
        """Ask politely (SIGTERM to the process group / container stop signal)."""

    @abstractmethod
    async def kill(self, handle: H) -> None:
        """Force (SIGKILL); afterwards nothing of the job may still run."""

    @abstractmethod
    async def cleanup(self, handle: H) -> None:
        """Remove what the job left (temp dirs, containers). Must not raise."""

    async def run(self, spec: JobSpec, sink: LineSink, cancel: asyncio.Event) -> JobResult:
        handle = await self.start(spec)
        try:
            return await self._supervise(spec, handle, sink, cancel)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.cleanup(handle))

    async def _supervise(
        self, spec: JobSpec, handle: H, sink: LineSink, cancel: asyncio.Event
    ) -> JobResult:
        streaming = asyncio.create_task(self.stream(handle, sink), name=f"stream-job-{spec.job_id}")
        waiting = asyncio.create_task(self.wait(handle), name=f"wait-job-{spec.job_id}")
        cancelled = asyncio.create_task(cancel.wait(), name=f"cancel-job-{spec.job_id}")
        try:
            done, _ = await asyncio.wait(
                {waiting, cancelled}, timeout=spec.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if waiting in done:
                exit_code = waiting.result()
                await self._drain(streaming)
                status = JobStatus.succeeded if exit_code == 0 else JobStatus.failed
                error = None if exit_code == 0 else f"exited with code {exit_code}"
                return JobResult(status, exit_code, error)
            reason = "cancelled" if cancelled in done else "timed_out"
            await sink(LogStream.system, _stop_message(reason, spec))
            stopped_code = await self._stop(handle, waiting, spec.kill_grace_s)
            await self._drain(streaming)
            if reason == "cancelled":
                return JobResult(JobStatus.cancelled, stopped_code, "cancelled by request")
            return JobResult(
                JobStatus.timed_out, stopped_code, f"timed out after {spec.timeout_s:g} s"
            )
        finally:
            for task in (streaming, waiting, cancelled):
                task.cancel()
            await asyncio.gather(streaming, waiting, cancelled, return_exceptions=True)

    async def _stop(self, handle: H, waiting: asyncio.Task[int], grace_s: float) -> int | None:
        await self.terminate(handle)
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), timeout=grace_s)
        except TimeoutError:
            await self.kill(handle)
            try:
                return await asyncio.wait_for(asyncio.shield(waiting), timeout=grace_s)
            except TimeoutError:
                log.error("job process did not exit after SIGKILL")
                return None

    async def _drain(self, streaming: asyncio.Task[None], timeout_s: float = 5.0) -> None:
        """Let the reader pass on what is still buffered once the process is gone."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(streaming), timeout=timeout_s)


def _stop_message(reason: str, spec: JobSpec) -> str:
    if reason == "cancelled":
        return "cancel requested: stopping the job (SIGTERM, then SIGKILL after the grace period)"
    return (
        f"timeout of {spec.timeout_s:g} s reached: stopping the job "
        f"(SIGTERM, then SIGKILL after {spec.kill_grace_s:g} s)"
    )


def job_marker_prefix(installation_id: str, job_id: int) -> str:
    """Marks a job's processes: unique per installation, shared by the job's attempts."""
    return f"{installation_id[:12]}-{job_id}-"
