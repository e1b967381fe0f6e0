"""Which executor runs a job: chosen once per node from settings and what is reachable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from cronium.config import ExecutorChoice
from cronium.engine.queue import ClaimedJob
from cronium.errors import ConfigError
from cronium.executors.base import ExecutorError, JobResult, JobSpec, LineSink
from cronium.executors.http import HttpExecutor
from cronium.executors.local import LocalExecutor
from cronium.services.probes import probe_docker

log = logging.getLogger("cronium.executors")


class Runs(Protocol):
    mode: str

    async def run(self, spec: JobSpec, sink: LineSink, cancel: asyncio.Event) -> JobResult: ...


class ExecutorSet:
    """The node's executors. `script` picks container or local; http runs in-process.

    `mode` is the script executor's mode (`container` | `local`) and `warning` says why a
    node runs unisolated scripts (None when it does not, or was told to): /ready shows both.
    """

    def __init__(
        self,
        script: Runs,
        http: Runs | None = None,
        *,
        warning: str | None = None,
        ssh: Runs | None = None,
        tool: Runs | None = None,
    ) -> None:
        self.script = script
        self.http = http or HttpExecutor()
        self.ssh = ssh
        self.tool = tool
        self.warning = warning

    @property
    def mode(self) -> str:
        return self.script.mode

    async def aclose(self) -> None:
        """Release the executors' clients (the Docker connection pool). Idempotent."""
        for executor in (self.script, self.http, self.ssh):
            close = getattr(executor, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def release(self) -> None:
        """Give back what the executors keep warm between jobs; they can still be used."""
        release = getattr(self.script, "release", None)
        if release is not None:
            with contextlib.suppress(Exception):
                await release()

    def mode_for(self, job: ClaimedJob) -> str:
        if job.server_id is not None:
            return "ssh"
        return self.script.mode

    def for_job(self, job: ClaimedJob, event_type: str) -> Runs:
        if event_type == "http":
            return self.http
        if event_type == "tool":
            # In-process, like http, but it reads credentials: the node gives it its pool
            # and cipher (ToolExecutor(core.db, core.cipher)).
            if self.tool is None:
                raise ExecutorError("this node has no tool executor", permanent=True)
            return self.tool
        if job.server_id is not None:
            if self.ssh is None:
                raise ExecutorError("this node has no SSH executor", permanent=True)
            return self.ssh
        return self.script


def local_only() -> ExecutorSet:
    return ExecutorSet(LocalExecutor())


LOCAL_WARNING = "scripts run with the local executor: they are NOT isolated from this host"


async def build_executors(settings: Any, *, node_id: str | None = None) -> ExecutorSet:
    """The node's executors per CRONIUM_EXECUTOR.

    - `local`: subprocesses (not isolated), as asked;
    - `container`: Docker, or ConfigError when the engine does not answer;
    - `auto` (default): Docker when the engine answers `/_ping` (DOCKER_HOST or
      /var/run/docker.sock), else local with a warning in the log and in `ExecutorSet.warning`.

    Close the result with `aclose()` when the node stops.
    """
    from cronium.executors.container import ContainerExecutor

    choice = ExecutorChoice(settings.executor)
    if choice is ExecutorChoice.local:
        log.warning(LOCAL_WARNING + " (CRONIUM_EXECUTOR=local)")
        return ExecutorSet(LocalExecutor())
    probe = await probe_docker(settings.docker_host)
    if probe.state == "ok":
        executor = ContainerExecutor.from_settings(settings, node_id=node_id)
        log.info(
            "scripts run in containers (Docker at %s; images bash=%s python=%s node=%s%s)",
            executor.docker_host,
            executor.images.bash,
            executor.images.python,
            executor.images.node,
            f"; runtime {executor.runtime}" if executor.runtime else "",
        )
        return ExecutorSet(executor)
    if choice is ExecutorChoice.container:
        raise ConfigError(f"CRONIUM_EXECUTOR=container but Docker is not usable: {probe.reason}")
    warning = f"{LOCAL_WARNING}: {probe.reason}"
    log.warning(warning)
    return ExecutorSet(LocalExecutor(), warning=warning)
