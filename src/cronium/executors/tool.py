"""Tool-action events: run in-process through the shared tool path, result as the output."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from cronium.db.models import JobStatus, LogStream
from cronium.executors.base import ExecutorError, JobResult, JobSpec, LineSink
from cronium.security.crypto import Cipher
from cronium.tools.base import ToolError
from cronium.tools.execute import ActionRequest, Outcome, RetryPolicy, execute

MAX_BUDGET_S = 300.0
ATTEMPT_TIMEOUT_S = 30.0

_SPEC = """SELECT e.tool_spec, x.owner_id FROM executions x JOIN events e ON e.id = x.event_id
           WHERE x.id = $1"""


class ToolExecutor:
    """Not a process: `run` is the whole protocol. Retries fit in the event's timeout.

    It reads the event's tool spec and hands it to `cronium.tools.execute`, the one path
    every tool action takes; attempts and the outcome become system lines, the outcome
    the job's output.
    """

    mode = "tool"

    def __init__(self, pool: asyncpg.Pool, cipher: Cipher) -> None:
        self._pool = pool
        self._cipher = cipher

    async def run(self, spec: JobSpec, sink: LineSink, cancel: asyncio.Event) -> JobResult:
        sending = asyncio.create_task(self._send(spec, sink))
        cancelled = asyncio.create_task(cancel.wait())
        try:
            done, _ = await asyncio.wait({sending, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if sending in done:
            return sending.result()
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        await sink(LogStream.system, "cancel requested: tool action aborted")
        return JobResult(JobStatus.cancelled, error="cancelled by request")

    async def _send(self, spec: JobSpec, sink: LineSink) -> JobResult:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_SPEC, spec.execution_id)
        tool_spec: dict[str, Any] | None = row["tool_spec"] if row else None
        if row is None or not tool_spec:
            raise ExecutorError("tool event without a tool action", permanent=True)
        request = ActionRequest(
            owner_id=row["owner_id"],
            action=str(tool_spec.get("action") or ""),
            params=dict(tool_spec.get("params") or {}),
            credential_id=tool_spec.get("credential_id"),
            execution_id=spec.execution_id,
        )
        budget_s = min(spec.timeout_s, MAX_BUDGET_S)
        policy = RetryPolicy(
            budget_s=budget_s, attempt_timeout_s=min(ATTEMPT_TIMEOUT_S, spec.timeout_s)
        )
        await sink(LogStream.system, f"tool action {request.action}")

        async def attempted(attempt: int, error: ToolError, wait_s: float | None) -> None:
            then = "giving up" if wait_s is None else f"retrying in {wait_s:g} s"
            await sink(LogStream.system, f"attempt {attempt} failed: {error.message}; {then}")

        outcome = await execute(self._pool, self._cipher, request, policy, attempted)
        return await _result(outcome, sink)


async def _result(outcome: Outcome, sink: LineSink) -> JobResult:
    output = outcome.as_dict()
    if outcome.ok:
        what = f"{outcome.tool}.{outcome.action}"
        tries = "" if outcome.attempts == 1 else f" after {outcome.attempts} attempts"
        await sink(LogStream.system, f"{what} sent in {outcome.duration_ms} ms{tries}")
        await sink(LogStream.stdout, json.dumps(outcome.result, default=str))
        return JobResult(JobStatus.succeeded, output=output)
    error = outcome.error
    assert error is not None
    if error.permanent:
        # Credential, template, parameters or a 4xx answer: the event's retries cannot help.
        raise ExecutorError(f"{error.reason}: {error.message}", permanent=True)
    return JobResult(JobStatus.failed, error=f"{error.reason}: {error.message}", output=output)
