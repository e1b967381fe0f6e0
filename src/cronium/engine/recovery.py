"""Find jobs whose node died (lease expired) and retry or fail them, settling executions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cronium import metrics
from cronium.core import Core
from cronium.engine import actions, queue
from cronium.engine.runner import concurrency_limit
from cronium.executors.local import kill_job_processes
from cronium.logs.hub import LiveHub

log = logging.getLogger("cronium.recovery")


async def recover_once(
    core: Core, hub: LiveHub, on_lost_node: Callable[[str], Awaitable[object]] | None = None
) -> list[queue.RecoveredJob]:
    async with core.db.acquire() as conn:
        # One cheap read per pass; the recovering transaction only when something expired.
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM jobs"
            " WHERE status = 'running' AND lease_expires_at < now())"
        ):
            return []
    async with core.db.acquire() as conn, conn.transaction():
        recovered = await queue.recover_expired(conn)
        await _take_over(core, recovered)
        settled_events: set[int] = set()
        for job in recovered:
            if job.status.value == "queued":
                continue
            finished = await queue.settle_execution(conn, job.execution_id)
            metrics.run_settled(finished)
            if finished is not None and finished.has_actions:
                await actions.on_settled(conn, finished)
            settled_events.add(job.event_id)
        for event_id in settled_events:
            row = await conn.fetchrow(
                "SELECT overlap_policy::text AS p, max_concurrent FROM events WHERE id = $1",
                event_id,
            )
            limit = concurrency_limit(row["p"], row["max_concurrent"]) if row else None
            if limit is not None:
                await queue.admit(conn, event_id, limit)
        if recovered:
            await conn.execute("SELECT pg_notify($1, 'recovered')", queue.JOBS_CHANNEL)
    for job in recovered:
        hub.publish(job.execution_id)
    if on_lost_node is not None:
        for owner in {job.lost_owner for job in recovered}:
            await on_lost_node(owner)
    return recovered


async def _take_over(core: Core, recovered: list[queue.RecoveredJob]) -> None:
    """Say which jobs were taken over, and end what their dead node left on this host.

    Runs before the recovering transaction commits: until then nobody can claim the
    re-queued jobs, so the kill (by job id, any attempt) cannot hit the next attempt, which
    may start on this very host as soon as the commit wakes the workers.
    """
    for job in recovered:
        metrics.LEASE_EXPIRIES.labels(job.status.value).inc()
        log.warning(
            "job %s of execution %s: lease of %s expired, %s",
            job.id,
            job.execution_id,
            job.lost_owner,
            "re-queued" if job.status.value == "queued" else "failed",
            extra={"action": "lease_expired"},
        )
        await asyncio.to_thread(kill_job_processes, core.installation_id, job.id)
