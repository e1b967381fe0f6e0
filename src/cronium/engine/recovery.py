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
        # The dead node may have been on this host: its scripts must not outlive it.
        await asyncio.to_thread(kill_job_processes, core.installation_id, job.id)
    if on_lost_node is not None:
        for owner in {job.lost_owner for job in recovered}:
            await on_lost_node(owner)
    return recovered
