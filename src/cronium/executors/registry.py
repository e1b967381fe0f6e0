"""Which executor runs a job: chosen once per node from settings and what is reachable."""

from __future__ import annotations

import logging
from typing import Protocol

import asyncio

from cronium.engine.queue import ClaimedJob
from cronium.executors.base import ExecutorError, JobResult, JobSpec, LineSink
from cronium.executors.http import HttpExecutor
from cronium.executors.local import LocalExecutor

log = logging.getLogger("cronium.executors")


class Runs(Protocol):
    mode: str

    async def run(self, spec: JobSpec, sink: LineSink, cancel: asyncio.Event) -> JobResult: ...


class ExecutorSet:
    """The node's executors. `script` picks container or local; http runs in-process."""

    def __init__(self, script: Runs, http: Runs | None = None) -> None:
        self.script = script
        self.http = http or HttpExecutor()

    def mode_for(self, job: ClaimedJob) -> str:
        if job.server_id is not None:
            return "ssh"
        return self.script.mode

    def for_job(self, job: ClaimedJob, event_type: str) -> Runs:
        if event_type == "http":
            return self.http
        if event_type == "tool":
            raise ExecutorError("tool events are not supported by this version yet", permanent=True)
        if job.server_id is not None:
            raise ExecutorError("SSH targets are not supported by this version yet", permanent=True)
        return self.script


def local_only() -> ExecutorSet:
    return ExecutorSet(LocalExecutor())


async def build_executors(settings: object) -> ExecutorSet:
    """The node's executors per CRONIUM_EXECUTOR (container support extends this)."""
    log.warning("scripts run with the local executor: they are NOT isolated from this host")
    return local_only()
