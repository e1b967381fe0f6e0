"""Runs: start, list, inspect, read logs, cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator
from sqlalchemy import select

from cronium.api.deps import CoreDep, DbDep, PrincipalDep, WriterDep
from cronium.api.listing import Page, PageDep, apply_sort, get_visible, paginate, visible
from cronium.api.schemas.events import MAX_ID
from cronium.api.schemas.runs import CancelOut, ExecutionOut, JobOut, LogLineOut, LogsOut
from cronium.db.models import Execution, ExecutionStatus, Job, LogLine, Trigger
from cronium.engine import actions, queue
from cronium.errors import Conflict

router = APIRouter(prefix="/executions", tags=["executions"])

ExecutionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The execution's id.")]


def _utc_bound(value: datetime | None) -> datetime | None:
    """A filter bound in UTC (naive means UTC); a 422, not a database error, out of range."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("is out of range: use a time between years 1 and 9999 (UTC)") from None


UtcBound = Annotated[datetime | None, AfterValidator(_utc_bound)]

_SORTS = {
    "created_at": Execution.created_at,
    "finished_at": Execution.finished_at,
    "status": Execution.status,
}
TERMINAL = {
    ExecutionStatus.succeeded,
    ExecutionStatus.failed,
    ExecutionStatus.timed_out,
    ExecutionStatus.cancelled,
    ExecutionStatus.partial,
}


def execution_out(ex: Execution, jobs: list[Job]) -> ExecutionOut:
    duration_ms = None
    if ex.started_at and ex.finished_at:
        duration_ms = int((ex.finished_at - ex.started_at).total_seconds() * 1000)
    return ExecutionOut(
        id=ex.id,
        event_id=ex.event_id,
        owner_id=ex.owner_id,
        status=ex.status,
        trigger=ex.trigger,
        triggered_by=ex.triggered_by,
        triggered_by_user_id=ex.triggered_by_user_id,
        parent_execution_id=ex.parent_execution_id,
        scheduled_for=ex.scheduled_for,
        created_at=ex.created_at,
        started_at=ex.started_at,
        finished_at=ex.finished_at,
        duration_ms=duration_ms,
        input=ex.input,
        output=ex.output,
        condition=ex.condition,
        error=ex.error,
        jobs=[JobOut.model_validate(j) for j in jobs],
    )


@router.get("", response_model=Page[ExecutionOut])
async def list_executions(
    principal: PrincipalDep,
    db: DbDep,
    page: PageDep,
    event_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: ExecutionStatus | None = None,
    trigger: Trigger | None = None,
    since: Annotated[UtcBound, Query(description="Created at or after (ISO 8601).")] = None,
    until: Annotated[UtcBound, Query(description="Created before (ISO 8601).")] = None,
) -> Page[ExecutionOut]:
    """List runs, newest first by default."""
    stmt = visible(select(Execution), Execution.owner_id, principal)
    if event_id is not None:
        stmt = stmt.where(Execution.event_id == event_id)
    if status is not None:
        stmt = stmt.where(Execution.status == status)
    if trigger is not None:
        stmt = stmt.where(Execution.trigger == trigger)
    if since is not None:
        stmt = stmt.where(Execution.created_at >= since)
    if until is not None:
        stmt = stmt.where(Execution.created_at < until)
    stmt = apply_sort(stmt, page.sort, _SORTS, "-created_at", Execution.id)
    items, total = await paginate(db, stmt, page)
    jobs_by_execution: dict[int, list[Job]] = {ex.id: [] for ex in items}
    if items:
        for job in (
            await db.scalars(
                select(Job).where(Job.execution_id.in_(jobs_by_execution)).order_by(Job.id)
            )
        ).all():
            jobs_by_execution[job.execution_id].append(job)
    return Page(
        items=[execution_out(ex, jobs_by_execution[ex.id]) for ex in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{execution_id}", response_model=ExecutionOut)
async def get_execution(
    execution_id: ExecutionId, principal: PrincipalDep, db: DbDep
) -> ExecutionOut:
    """One run with its jobs (one per target)."""
    ex = await get_visible(db, Execution, execution_id, principal, what="execution")
    jobs = (await db.scalars(select(Job).where(Job.execution_id == ex.id).order_by(Job.id))).all()
    return execution_out(ex, list(jobs))


@router.get("/{execution_id}/logs", response_model=LogsOut)
async def get_logs(
    execution_id: ExecutionId,
    principal: PrincipalDep,
    db: DbDep,
    after: Annotated[int, Query(ge=0, description="Return lines with seq greater than this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> LogsOut:
    """Log lines after a sequence number; pass `next_after` back to continue."""
    await get_visible(db, Execution, execution_id, principal, what="execution")
    rows = (
        await db.scalars(
            select(LogLine)
            .where(LogLine.execution_id == execution_id, LogLine.seq > after)
            .order_by(LogLine.seq)
            .limit(limit)
        )
    ).all()
    items = [
        LogLineOut(seq=r.seq, stream=r.stream, ts=r.ts, target=r.target, line=r.line) for r in rows
    ]
    return LogsOut(items=items, next_after=items[-1].seq if items else after)


@router.post("/{execution_id}/cancel", response_model=CancelOut, status_code=202)
async def cancel_execution(
    execution_id: ExecutionId, principal: WriterDep, core: CoreDep, db: DbDep
) -> CancelOut:
    """Cancel a run: pending jobs end at once, running ones get SIGTERM, then SIGKILL."""
    # No row lock here: the cancel below runs on the engine's own connection and must not
    # wait for this request's transaction. WriterDep already refuses viewers.
    ex = await get_visible(db, Execution, execution_id, principal, what="execution")
    if ex.status in TERMINAL:
        raise Conflict(f"execution {execution_id} already finished ({ex.status.value})")
    status = ex.status
    async with core.db.acquire() as conn, conn.transaction():
        await queue.request_cancel(conn, execution_id)
        finished = await queue.settle_execution(conn, execution_id)
        if finished is not None:
            status = finished.status
            await actions.on_settled(conn, finished)
    core.hub.publish(execution_id)
    return CancelOut(execution_id=execution_id, status=status)
