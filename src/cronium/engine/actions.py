"""Conditional actions, fired by whoever settled the execution, in that same transaction.

Settling is a conditional UPDATE that exactly one caller wins, and the follow-ups are
written in the winner's transaction: a crash before commit loses both, a commit keeps
both, so every action fires exactly once per execution — also for multi-target runs.
`run_event` actions enqueue the target event with this run's output as input; tool actions
are written to the delivery outbox, which a worker sends with retries.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from cronium.db.models import ActionTrigger, ExecutionStatus, Trigger
from cronium.engine import queue, workflows
from cronium.engine.queue import FinishedExecution

log = logging.getLogger("cronium.actions")

MAX_CHAIN_DEPTH = 10
ACTIONS_CHANNEL = "cronium_actions"
_FAILURE = {ExecutionStatus.failed, ExecutionStatus.timed_out, ExecutionStatus.partial}


def matches(
    trigger: ActionTrigger, wanted: bool | None, status: ExecutionStatus, condition: bool | None
) -> bool:
    if trigger is ActionTrigger.always:
        return True
    if trigger is ActionTrigger.on_success:
        return status is ExecutionStatus.succeeded
    if trigger is ActionTrigger.on_failure:
        return status in _FAILURE
    # on_condition: the script set a condition and it equals the action's.
    return status is not ExecutionStatus.cancelled and condition is not None and condition == wanted


async def on_settled(conn: asyncpg.Connection, finished: FinishedExecution) -> list[int]:
    """Start the execution's follow-ups; returns the ids of executions started."""
    execution = await conn.fetchrow(
        "SELECT output, condition, chain_depth, workflow_run_id FROM executions WHERE id = $1",
        finished.id,
    )
    if execution is None:
        return []
    if execution["workflow_run_id"] is not None:
        await workflows.on_node_settled(
            conn, finished.id, execution["workflow_run_id"], finished.status
        )
    actions = await conn.fetch(
        """SELECT id, "on"::text AS trigger, condition, type::text AS type, target_event_id
           FROM event_actions WHERE event_id = $1 ORDER BY position, id""",
        finished.event_id,
    )
    started: list[int] = []
    for action in actions:
        if not matches(
            ActionTrigger(action["trigger"]),
            action["condition"],
            finished.status,
            execution["condition"],
        ):
            continue
        if action["type"] == "run_event":
            new_id = await _run_event(conn, finished, action["target_event_id"], execution)
            if new_id is not None:
                started.append(new_id)
        else:
            await conn.execute(
                """INSERT INTO action_deliveries (execution_id, action_id) VALUES ($1, $2)
                   ON CONFLICT (execution_id, action_id) DO NOTHING""",
                finished.id,
                action["id"],
            )
            await conn.execute("SELECT pg_notify($1, $2)", ACTIONS_CHANNEL, str(finished.id))
    return started


async def _run_event(
    conn: asyncpg.Connection, finished: FinishedExecution, event_id: int, execution: asyncpg.Record
) -> int | None:
    depth = execution["chain_depth"] + 1
    if depth > MAX_CHAIN_DEPTH:
        await system_line(
            conn,
            finished.id,
            f"action chain stopped: starting event {event_id} would exceed the chain depth "
            "limit of "
            f"{MAX_CHAIN_DEPTH}",
        )
        log.warning(
            "execution %s: chain depth limit reached", finished.id, extra={"action": "chain_limit"}
        )
        return None
    from cronium.engine.runner import concurrency_limit
    from cronium.engine.scheduler import event_targets

    target = await conn.fetchrow(
        """SELECT id, owner_id, status::text AS status, run_local, retries, retry_backoff_seconds,
                  overlap_policy::text AS overlap, max_concurrent
           FROM events WHERE id = $1""",
        event_id,
    )
    if target is None or target["status"] == "archived":
        await system_line(
            conn, finished.id, f"action skipped: event {event_id} no longer exists or is archived"
        )
        return None
    output = execution["output"]
    new_id = await queue.enqueue(
        conn,
        queue.NewExecution(
            event_id=event_id,
            owner_id=target["owner_id"],
            trigger=Trigger.action,
            targets=await event_targets(conn, event_id, target["run_local"]),
            input=output if output is not None else {},
            triggered_by=f"execution:{finished.id}",
            parent_execution_id=finished.id,
            chain_depth=depth,
            max_attempts=target["retries"] + 1,
            retry_backoff_s=target["retry_backoff_seconds"],
            concurrency_limit=concurrency_limit(target["overlap"], target["max_concurrent"]),
        ),
    )
    if new_id is not None:
        await system_line(
            conn, finished.id, f"action started event {event_id} as execution {new_id}"
        )
    return new_id


async def system_line(conn: asyncpg.Connection, execution_id: int, text: str) -> None:
    """Append one `system` log line to an execution (after its jobs' lines)."""
    seq = await queue.reserve_log_seq(conn, execution_id, 1)
    await queue.append_logs(
        conn, execution_id, None, "system", [(seq, "system", datetime.now(UTC), text)]
    )
