"""Job workers: claim from the queue, run through an executor, finish exactly once.

One claim loop per node fills up to `concurrency` slots. NOTIFY wakes it; a slow poll is
the safety net. A heartbeat loop renews leases at a third of their length and learns about
cancellations; a job whose lease was lost (another node recovered it) is stopped locally
and never finished by this node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from cronium import metrics
from cronium.core import Core
from cronium.db.models import JobStatus, LogStream
from cronium.db.session import DB_UNAVAILABLE
from cronium.engine import actions, queue
from cronium.engine.queue import ClaimedJob
from cronium.engine.runner import LoadedJob, load_job
from cronium.executors.base import ExecutorError, JobResult
from cronium.executors.registry import ExecutorSet
from cronium.logs.capture import Masker
from cronium.logs.hub import LiveHub
from cronium.logs.sink import JobLogWriter
from cronium.runtime import tokens as runtime_tokens
from cronium.security.tokens import new_token

log = logging.getLogger("cronium.worker")

# Storing a finished job's result while the database is away: first retry after this long,
# doubling up to the cap. The job keeps its slot (and its lease renewals) meanwhile.
CONCLUDE_RETRY_FIRST_S = 0.25
CONCLUDE_RETRY_MAX_S = 5.0


@dataclass
class RunningJob:
    job: ClaimedJob
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    lease_lost: bool = False
    task: asyncio.Task[None] | None = None
    masker: Masker | None = None


class Worker:
    def __init__(self, core: Core, hub: LiveHub, executors: ExecutorSet) -> None:
        self.core = core
        self.hub = hub
        self.executors = executors
        self.concurrency = core.settings.worker_concurrency
        self.lease_s = core.settings.lease_s
        self.running: dict[int, RunningJob] = {}
        self.wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._accepting = True
        metrics.WORKER_SLOTS.set(self.concurrency)

    # -- loops -------------------------------------------------------------------------

    async def claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._slot_freed.clear()
            free = self.concurrency - len(self.running)
            claimed: list[ClaimedJob] = []
            if free > 0 and self._accepting:
                try:
                    async with self.core.db.acquire() as conn:
                        claimed = await queue.claim(conn, self.core.node_id, free, self.lease_s)
                except DB_UNAVAILABLE as exc:
                    log.warning("claiming jobs failed (%s); retrying", exc)
                    await self._wait_for(stop, stop, self.core.settings.poll_interval_s)
                    continue
                for job in claimed:
                    self._start(job)
            if free <= 0 or (claimed and len(claimed) == free):
                await self._wait_for(self._slot_freed, stop, self.core.settings.poll_interval_s)
            elif not claimed:
                await self._wait_for(self.wake, stop, self.core.settings.poll_interval_s)

    async def heartbeat_loop(self, stop: asyncio.Event) -> None:
        interval_s = self.lease_s / 3
        while not stop.is_set():
            await _sleep_or_stop(stop, interval_s)
            if not self.running:
                continue
            # Judge only jobs held before the heartbeat: one claimed meanwhile is not
            # in its answer yet and must not look lost.
            held = dict(self.running)
            try:
                async with self.core.db.acquire() as conn:
                    owned = await queue.heartbeat(conn, self.core.node_id, self.lease_s)
            except DB_UNAVAILABLE as exc:
                # Leases run on meanwhile; if one expires, another node recovers the job and
                # the next heartbeat that gets through stops it here.
                log.warning("renewing leases failed (%s); retrying", exc)
                continue
            for job_id, running in held.items():
                if job_id not in owned and running.task is not None and not running.task.done():
                    # Recovered by another node: stop it here, and do not report a result.
                    running.lease_lost = True
                    running.cancel.set()
                elif owned.get(job_id):
                    running.cancel.set()

    def on_cancel_notify(self, payload: str) -> None:
        for part in payload.split(","):
            if part.isdigit() and (running := self.running.get(int(part))) is not None:
                running.cancel.set()

    async def drain(self, grace_s: float) -> None:
        """Stop claiming; give running jobs `grace_s`, then cancel them back to the queue."""
        self._accepting = False
        tasks = [r.task for r in self.running.values() if r.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for running in self.running.values():
            if running.task in pending:
                running.lease_lost = True  # hand back: recovery re-queues it by lease expiry
                running.cancel.set()
        if pending:
            await asyncio.wait(pending, timeout=self.core.settings.kill_grace_s + 5)

    # -- one job -------------------------------------------------------------------------

    def _start(self, job: ClaimedJob) -> None:
        running = RunningJob(job)
        if job.cancel_requested:
            running.cancel.set()
        self.running[job.id] = running
        metrics.WORKER_SLOTS_BUSY.inc()
        running.task = asyncio.create_task(self._run(running), name=f"job-{job.id}")

    async def _run(self, running: RunningJob) -> None:
        job = running.job
        started = time.monotonic()
        try:
            await self._execute(running)
        except DB_UNAVAILABLE as exc:
            # Only before the job starts (later failures are retried in place): it stays
            # claimed, and once its lease runs out a node re-queues or fails it by policy.
            log.warning(
                "job %s could not start, the database is unreachable (%s); its lease will expire",
                job.id,
                exc,
                extra={"action": "job_start_failed"},
            )
        except Exception:
            log.exception("job %s crashed the worker path", job.id, extra={"action": "job_crash"})
        finally:
            self.core.runtime_callers.evict_job(job.id)
            # Only this attempt's entries: a retry without backoff may already have been
            # claimed by this node under the same job id, and must keep its own.
            if self.core.job_maskers.get(job.id) is running.masker:
                self.core.job_maskers.pop(job.id, None)
            if self.running.get(job.id) is running:
                del self.running[job.id]
            metrics.WORKER_SLOTS_BUSY.dec()
            self._slot_freed.set()
            log.info(
                "job %s of execution %s done in %.0f ms",
                job.id,
                job.execution_id,
                (time.monotonic() - started) * 1000,
                extra={"action": "job_done"},
            )

    async def _execute(self, running: RunningJob) -> None:
        job = running.job
        started, mode = time.monotonic(), "none"
        async with self.core.db.acquire() as conn:
            try:
                mode = self.executors.mode_for(job)
                token = new_token(runtime_tokens.TOKEN_PREFIX)
                loaded: LoadedJob | None = await load_job(self.core, conn, job, mode, token)
            except ExecutorError as exc:
                loaded, load_error = None, exc
        masker = loaded.masker if loaded else Masker()
        self.core.job_maskers[job.id] = running.masker = masker
        if loaded is not None:  # its token may be cached on this node's socket from now on
            self.core.runtime_callers.start_job(job.id, token)
        writer = JobLogWriter(
            self.core.db,
            execution_id=job.execution_id,
            job_id=job.id,
            target=job.target,
            masker=masker,
            on_flush=self.hub.publish,
            max_job_bytes=self.core.settings.max_job_output_bytes,
        )
        try:
            if loaded is None:
                result = JobResult(JobStatus.failed, error=load_error.message)
                permanent = True
            else:
                result, permanent = await self._run_executor(running, loaded, writer)
            # The error and output are stored and shown like the log: masked the same way
            # (an HTTP answer or a tool's error may hold a secret).
            result.error = masker.mask(result.error) if result.error else result.error
            result.output = masker.mask_value(result.output)
            if result.error and result.status is not JobStatus.succeeded:
                await writer.write(LogStream.system, result.error)
        finally:
            await asyncio.shield(writer.close())
        # Before its end is saved: the socket's cache never serves a token past its job.
        self.core.runtime_callers.evict_job(job.id)
        if running.lease_lost:
            return
        await asyncio.shield(
            self._conclude_when_possible(running, result, permanent, writer, loaded)
        )
        executor = loaded.event_type if loaded and loaded.event_type in ("http", "tool") else mode
        metrics.job_concluded(result.status.value, executor, time.monotonic() - started)

    async def _run_executor(
        self, running: RunningJob, loaded: LoadedJob, writer: JobLogWriter
    ) -> tuple[JobResult, bool]:
        job = running.job
        try:
            executor = self.executors.for_job(job, loaded.event_type)
        except ExecutorError as exc:  # no executor for this kind of job: fail it, now
            return JobResult(JobStatus.failed, error=exc.message), exc.permanent
        await writer.write(
            LogStream.system,
            f"attempt {job.attempt}/{job.max_attempts} on {self.core.node_id} "
            f"({executor.mode} executor)",
        )
        try:
            return await executor.run(loaded.spec, writer, running.cancel), False
        except ExecutorError as exc:
            return JobResult(JobStatus.failed, error=exc.message), exc.permanent

    async def _conclude_when_possible(
        self,
        running: RunningJob,
        result: JobResult,
        permanent: bool,
        writer: JobLogWriter,
        loaded: LoadedJob | None,
    ) -> None:
        """Store the result, retrying through a database outage.

        Giving up would lose a result the job really had: its lease would expire and the
        job would run again or fail as if its node had died. Retrying is safe because the
        finish is a conditional UPDATE: if another node recovered the job meanwhile, this
        node's late result is simply not taken.
        """
        delay_s = CONCLUDE_RETRY_FIRST_S
        while not running.lease_lost:
            try:
                await self._conclude(running.job, result, permanent, writer, loaded)
                return
            except DB_UNAVAILABLE as exc:
                log.warning(
                    "job %s: storing its result failed (%s); retrying in %g s",
                    running.job.id,
                    exc,
                    delay_s,
                )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, CONCLUDE_RETRY_MAX_S)

    async def _conclude(
        self,
        job: ClaimedJob,
        result: JobResult,
        permanent: bool,
        writer: JobLogWriter,
        loaded: LoadedJob | None,
    ) -> None:
        retryable = result.status in (JobStatus.failed, JobStatus.timed_out) and not permanent
        if retryable and job.attempt < job.max_attempts:
            await self._retry(job, result, writer)
            return
        async with self.core.db.acquire() as conn, conn.transaction():
            won = await queue.finish(
                conn,
                job.id,
                self.core.node_id,
                result.status,
                exit_code=result.exit_code,
                error=result.error,
                output=result.output,
            )
            if not won:
                return
            finished = await queue.settle_execution(conn, job.execution_id)
            if finished is not None and finished.has_actions:
                await actions.on_settled(conn, finished)
            if loaded is not None and loaded.concurrency_limit is not None:
                await queue.admit(conn, job.event_id, loaded.concurrency_limit)
        self.hub.publish(job.execution_id)
        if finished is not None:
            metrics.run_settled(finished)
            log.info(
                "execution %s %s",
                finished.id,
                finished.status.value,
                extra={"action": "execution_finished"},
            )

    async def _retry(self, job: ClaimedJob, result: JobResult, writer: JobLogWriter) -> None:
        async with self.core.db.acquire() as conn, conn.transaction():
            backoff_s = await conn.fetchval(
                "SELECT retry_backoff_seconds FROM jobs WHERE id = $1", job.id
            )
            delay_s = float(backoff_s) * 2 ** (job.attempt - 1)
            retried = await queue.retry(
                conn, job.id, self.core.node_id, delay_s, result.error or "failed"
            )
            if retried:
                await conn.execute(
                    "SELECT pg_notify($1, $2)", queue.JOBS_CHANNEL, str(job.execution_id)
                )
        # After commit: the log insert must not wait on the job row this transaction locked.
        if retried:
            await writer.write(LogStream.system, f"retrying in {delay_s:g} s")
            await writer.close()

    @staticmethod
    async def _wait_for(event: asyncio.Event, stop: asyncio.Event, timeout_s: float) -> None:
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        event.clear()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
