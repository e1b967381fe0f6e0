"""The queue's gatekeeper: the only module that runs queue SQL.

Workers and the API call verbs (`enqueue`, `claim`, `heartbeat`, `finish`, …) and get small
frozen records back. Terminal transitions are conditional UPDATEs: the row count tells the
caller whether it won, and only the winner fires follow-ups.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from cronium.db.models import ExecutionStatus, JobStatus, Trigger
from cronium.engine.sql import q

JOBS_CHANNEL = "cronium_jobs"
CANCEL_CHANNEL = "cronium_cancel"
LOGS_CHANNEL = "cronium_logs"
STATUS_CHANNEL = "cronium_status"
SCHEDULES_CHANNEL = "cronium_schedules"


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    execution_id: int
    event_id: int
    target: str
    server_id: int | None
    attempt: int
    max_attempts: int
    cancel_requested: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ClaimedJob:
        return cls(**dict(row))


@dataclass(frozen=True)
class FinishedExecution:
    id: int
    event_id: int
    status: ExecutionStatus
    owner_id: int
    has_actions: bool = True  # False: no follow-up can fire, on_settled may be skipped


@dataclass(frozen=True)
class Target:
    name: str  # "local" or the server's name
    server_id: int | None = None


@dataclass(frozen=True)
class NewExecution:
    event_id: int
    owner_id: int
    trigger: Trigger
    targets: Sequence[Target]
    input: Any = None
    triggered_by_user_id: int | None = None
    triggered_by: str | None = None
    scheduled_for: datetime | None = None
    parent_execution_id: int | None = None
    chain_depth: int = 0
    max_attempts: int = 1
    retry_backoff_s: int = 10
    priority: int = 0
    # Admission: with a limit, jobs wait until the event has a free slot.
    concurrency_limit: int | None = None
    workflow_run_id: int | None = None  # a node of this workflow run


async def enqueue(conn: asyncpg.Connection, new: NewExecution) -> int | None:
    """Create an execution with one job per target in the caller's transaction.

    Returns None when a scheduled fire for (event, fire time) already exists: the unique
    index, not a timer, guarantees one execution per fire.
    """
    if new.concurrency_limit is not None:
        # Take admission's event lock before inserting: the inserts' foreign-key checks
        # share-lock the event row, and two enqueues that both upgrade that share lock to
        # admission's exclusive one deadlock.
        await conn.execute(q("lock_event"), new.event_id)
    execution_id = await conn.fetchval(
        """
        INSERT INTO executions (event_id, owner_id, status, trigger, triggered_by_user_id,
                                triggered_by, scheduled_for, input, parent_execution_id,
                                chain_depth, workflow_run_id)
        VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
        ON CONFLICT (event_id, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING
        RETURNING id
        """,
        new.event_id,
        new.owner_id,
        new.trigger.value,
        new.triggered_by_user_id,
        new.triggered_by,
        new.scheduled_for,
        new.input if new.input is not None else {},
        new.parent_execution_id,
        new.chain_depth,
        new.workflow_run_id,
    )
    if execution_id is None:
        return None
    initial = "waiting" if new.concurrency_limit is not None else "queued"
    await conn.executemany(
        """
        INSERT INTO jobs (execution_id, event_id, target, server_id, status, priority, max_attempts,
                          retry_backoff_seconds)
        VALUES ($1, $2, $3, $4, $5::job_status, $6, $7, $8)
        """,
        [
            (
                execution_id,
                new.event_id,
                t.name,
                t.server_id,
                initial,
                new.priority,
                new.max_attempts,
                new.retry_backoff_s,
            )
            for t in new.targets
        ],
    )
    if new.concurrency_limit is not None:
        await admit(conn, new.event_id, new.concurrency_limit)
    await conn.execute("SELECT pg_notify($1, $2)", JOBS_CHANNEL, str(execution_id))
    return int(execution_id)


async def enqueue_fires(
    conn: asyncpg.Connection, fires: Sequence[NewExecution]
) -> dict[tuple[int, datetime], int]:
    """Enqueue many scheduled fires in the caller's transaction, in a few statements.

    Like `enqueue` for each, set-based: returns {(event id, fire time): execution id} for
    the fires that were new; a fire already made is left out (the unique key decides).
    """
    if not fires:
        return {}
    if any(f.scheduled_for is None for f in fires):
        raise ValueError("enqueue_fires takes scheduled fires only")
    limited = sorted({f.event_id for f in fires if f.concurrency_limit is not None})
    if limited:
        await conn.execute(q("lock_events"), limited)  # as in enqueue: before the inserts
    rows = await conn.fetch(
        q("insert_fire_executions"),
        [f.event_id for f in fires],
        [f.owner_id for f in fires],
        [f.scheduled_for for f in fires],
        [f.trigger.value for f in fires],
        [f.triggered_by for f in fires],
        [json.dumps(f.input if f.input is not None else {}) for f in fires],
    )
    created = {(r["event_id"], r["scheduled_for"]): int(r["id"]) for r in rows}
    jobs = [
        (created[(f.event_id, f.scheduled_for)], f, t)
        for f in fires
        if (f.event_id, f.scheduled_for) in created
        for t in f.targets
    ]
    if jobs:
        await conn.execute(
            q("insert_jobs"),
            [x for x, _f, _t in jobs],
            [f.event_id for _x, f, _t in jobs],
            [t.name for _x, _f, t in jobs],
            [t.server_id for _x, _f, t in jobs],
            ["queued" if f.concurrency_limit is None else "waiting" for _x, f, _t in jobs],
            [f.priority for _x, f, _t in jobs],
            [f.max_attempts for _x, f, _t in jobs],
            [f.retry_backoff_s for _x, f, _t in jobs],
        )
    admitted: set[int] = set()
    for f in fires:
        if f.concurrency_limit is not None and f.event_id not in admitted:
            admitted.add(f.event_id)
            await admit(conn, f.event_id, f.concurrency_limit)
    return created


async def admit(conn: asyncpg.Connection, event_id: int, limit: int) -> int:
    """Start waiting executions of an event while it has free slots; returns jobs released."""
    await conn.execute(q("lock_event"), event_id)
    rows = await conn.fetch(q("promote_waiting"), event_id, limit)
    # Released jobs are ready now: wake the workers (on commit) rather than leave them to
    # the slow safety poll.
    for execution_id in sorted({r["execution_id"] for r in rows}):
        await conn.execute("SELECT pg_notify($1, $2)", JOBS_CHANNEL, str(execution_id))
    return len(rows)


async def claim(
    conn: asyncpg.Connection, node_id: str, limit: int, lease_s: float
) -> list[ClaimedJob]:
    rows = await conn.fetch(q("claim_jobs"), node_id, limit, lease_s)
    return [ClaimedJob.from_row(r) for r in rows]


async def heartbeat(conn: asyncpg.Connection, node_id: str, lease_s: float) -> dict[int, bool]:
    """Renew leases; returns {job id: cancel requested} for the jobs this node still owns."""
    rows = await conn.fetch(q("heartbeat"), node_id, lease_s)
    return {r["id"]: r["cancel_requested"] for r in rows}


async def start_job(
    conn: asyncpg.Connection, job: ClaimedJob, token_hash: str, mode: str
) -> asyncpg.Record:
    """Mark the execution started, store the job's token hash and load what the run needs.

    One round trip on the job's critical path; the row's event columns are NULL when the
    event no longer exists.
    """
    row: asyncpg.Record = await conn.fetchrow(
        q("start_job"), job.id, job.execution_id, token_hash, mode
    )
    return row


async def finish(
    conn: asyncpg.Connection,
    job_id: int,
    node_id: str,
    status: JobStatus,
    *,
    exit_code: int | None,
    error: str | None,
    output: Any = None,
) -> bool:
    """Terminal transition of a job; False when this node no longer owns it (lease lost)."""
    row = await conn.fetchrow(
        q("finish_job"),
        job_id,
        node_id,
        status.value,
        exit_code,
        error,
        output,
    )
    return row is not None


async def retry(
    conn: asyncpg.Connection, job_id: int, node_id: str, delay_s: float, error: str
) -> bool:
    row = await conn.fetchrow(q("retry_job"), job_id, node_id, delay_s, error)
    return row is not None


async def settle_execution(conn: asyncpg.Connection, execution_id: int) -> FinishedExecution | None:
    """Settle the execution if all its jobs ended. Non-None only for the one caller that won.

    Call in the transaction that ended the job. The execution row is locked first, in its
    own statement: two jobs ending at once then count in turn, and the second one's count
    (a new snapshot, after the first committed) sees both ended. Counting without the lock,
    each would see the other still running and nobody would settle the execution.
    """
    await conn.execute(q("lock_execution"), execution_id)
    row = await conn.fetchrow(q("finish_execution"), execution_id)
    if row is None:
        return None
    return FinishedExecution(
        row["id"],
        row["event_id"],
        ExecutionStatus(row["status"]),
        row["owner_id"],
        row["has_actions"],
    )


@dataclass(frozen=True)
class RecoveredJob:
    id: int
    execution_id: int
    event_id: int
    status: JobStatus
    lost_owner: str


async def recover_expired(conn: asyncpg.Connection) -> list[RecoveredJob]:
    rows = await conn.fetch(q("recover_expired"))
    return [
        RecoveredJob(
            r["id"], r["execution_id"], r["event_id"], JobStatus(r["status"]), r["lost_owner"]
        )
        for r in rows
    ]


async def request_cancel(conn: asyncpg.Connection, execution_id: int) -> list[int]:
    """Cancel an execution: pending jobs end now, running ones are told to stop.

    Returns the ids of running jobs whose nodes must stop them (told via NOTIFY too).
    """
    flagged = await conn.fetch(q("request_cancel"), execution_id)
    await conn.fetch(q("cancel_pending"), execution_id)
    running = [r["id"] for r in flagged if r["status"] == "running"]
    if running:
        await conn.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, ",".join(map(str, running)))
    return running


async def reserve_log_seq(conn: asyncpg.Connection, execution_id: int, count: int) -> int:
    """First of `count` fresh sequence numbers for execution's log lines."""
    first = await conn.fetchval(q("reserve_log_seq"), execution_id, count)
    return int(first) + 1


async def append_logs(
    conn: asyncpg.Connection,
    execution_id: int,
    job_id: int | None,
    target: str,
    lines: Sequence[tuple[int, str, datetime, str]],
) -> None:
    """Store lines (seq, stream, ts, text) and NOTIFY live viewers, in one round trip."""
    seqs, streams, stamps, texts = zip(*lines, strict=True) if lines else ((), (), (), ())
    await conn.execute(
        q("append_logs"),
        execution_id,
        job_id,
        target,
        list(seqs),
        list(streams),
        list(stamps),
        list(texts),
    )


async def store_logs(
    conn: asyncpg.Connection,
    execution_id: int,
    job_id: int | None,
    target: str,
    lines: Sequence[tuple[str, datetime, str]],
) -> int | None:
    """Number and store lines (stream, ts, text), NOTIFY live viewers; returns the last seq.

    One statement, so no transaction round trips; None if the execution no longer exists.
    """
    streams, stamps, texts = zip(*lines, strict=True) if lines else ((), (), ())
    last = await conn.fetchval(
        q("store_logs"), execution_id, job_id, target, list(streams), list(stamps), list(texts)
    )
    return None if last is None else int(last)
