"""Scheduled workflow runs: the scheduler's second pass, after the events.

Same rules as events (domain/firing.py): a fire later than the grace is a misfire, run
once or skipped by the workflow's policy. Exactly once: the due rows are locked
(SKIP LOCKED: another scheduler's rows are left to it) and each fire is a run keyed
(workflow, fire time), unique.
"""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from cronium.db.models import MisfirePolicy, OverlapPolicy, ScheduleKind, Trigger
from cronium.domain.firing import ScheduleState, plan
from cronium.engine import workflows

log = logging.getLogger("cronium.scheduler")

DUE_BATCH = 50


async def fire_due_workflows(conn: asyncpg.Connection, now: datetime, grace_s: float) -> bool:
    """Start the due workflows' runs in the caller's transaction; True if more are due."""
    due = await conn.fetch(
        """SELECT id, owner_id, input, schedule_kind::text AS kind, cron, timezone,
                  interval_seconds, run_at, start_at, next_fire_at,
                  misfire_policy::text AS misfire
           FROM workflows WHERE status = 'active' AND next_fire_at <= $1
           ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        DUE_BATCH,
    )
    for wf in due:
        state = ScheduleState(
            kind=ScheduleKind(wf["kind"]),
            cron=wf["cron"],
            timezone=wf["timezone"],
            interval_seconds=wf["interval_seconds"],
            run_at=wf["run_at"],
            start_at=wf["start_at"],
            next_fire_at=wf["next_fire_at"],
            misfire_policy=MisfirePolicy(wf["misfire"]),
            misfire_window_s=3600,
            max_executions=None,
            execution_count=0,
            overlap_policy=OverlapPolicy.allow,
        )
        try:
            fire_plan = plan(state, now, grace_s)
        except Exception as exc:  # a schedule that cannot be computed stops only this one
            log.warning("workflow %s paused: cannot compute its schedule: %s", wf["id"], exc)
            await conn.execute(
                "UPDATE workflows SET status = 'paused', next_fire_at = NULL WHERE id = $1",
                wf["id"],
            )
            continue
        for fire_time in fire_plan.run:
            await workflows.start_run(
                conn,
                wf["id"],
                owner_id=wf["owner_id"],
                trigger=Trigger.schedule,
                input=wf["input"],
                triggered_by="schedule",
                scheduled_for=fire_time,
            )
        if fire_plan.missed:
            log.info("workflow %s: %d fire(s) missed", wf["id"], len(fire_plan.missed))
        await conn.execute(
            """UPDATE workflows SET next_fire_at = $2,
                      status = CASE WHEN $3 THEN 'paused'::event_status ELSE status END
               WHERE id = $1""",
            wf["id"],
            fire_plan.next_fire_at,
            fire_plan.stops,
        )
    return len(due) == DUE_BATCH


async def next_workflow_fire(conn: asyncpg.Connection) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT min(next_fire_at) FROM workflows WHERE status = 'active'"
    )
    return value
