"""The dashboard: the first page after signing in.

Every figure is one aggregate query (COUNT … FILTER) over the visible rows, so the page
costs a handful of round trips however many runs are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Text, case, cast, func, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.deps import DbDep, Principal
from cronium.api.routers.executions import TERMINAL
from cronium.db.models import Event, EventStatus, Execution, ExecutionStatus
from cronium.web.deps import PageUser
from cronium.web.render import render
from cronium.web.routes.executions import RUN_COLUMNS, run_rows

router = APIRouter(include_in_schema=False)

RECENT_RUNS = 10
NEXT_RUNS = 8
FAILING = 8
FAILED = (ExecutionStatus.failed, ExecutionStatus.timed_out, ExecutionStatus.partial)


@dataclass(frozen=True)
class Rate:
    succeeded: int
    finished: int

    @property
    def percent(self) -> float | None:
        return None if self.finished == 0 else 100.0 * self.succeeded / self.finished

    @property
    def label(self) -> str:
        """ "97.3 %", "100 %"; a dash before any run has finished."""
        pct = self.percent
        return "—" if pct is None else f"{pct:.1f}".removesuffix(".0") + " %"

    @property
    def tone(self) -> str:
        pct = self.percent
        return "" if pct is None else "ok" if pct >= 95 else "warn" if pct >= 80 else "bad"


@dataclass(frozen=True)
class NextRun:
    event_id: int
    name: str
    at: datetime
    schedule: str


@dataclass(frozen=True)
class Failing:
    event_id: int
    name: str
    failures: int
    runs: int
    last_status: str
    last_execution_id: int
    last_at: datetime


def _mine(column: Any, principal: Principal) -> list[Any]:
    return [] if principal.sees_all else [column == principal.user_id]


async def _event_counts(db: AsyncSession, principal: Principal) -> dict[str, int]:
    row = (
        await db.execute(
            select(
                func.count().filter(Event.status == EventStatus.active),
                func.count().filter(Event.status == EventStatus.paused),
                func.count().filter(Event.status == EventStatus.draft),
                func.count().filter(Event.status != EventStatus.archived),
            ).where(*_mine(Event.owner_id, principal))
        )
    ).one()
    return {"active": row[0], "paused": row[1], "draft": row[2], "total": row[3]}


async def _run_counts(
    db: AsyncSession, principal: Principal, now: datetime
) -> tuple[Rate, Rate, int, int]:
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    finished = Execution.status.in_(TERMINAL)
    ok = Execution.status == ExecutionStatus.succeeded
    recent = Execution.created_at >= day
    row = (
        await db.execute(
            select(
                func.count().filter(recent, ok),
                func.count().filter(recent, finished),
                func.count().filter(Execution.created_at >= week, ok),
                func.count().filter(Execution.created_at >= week, finished),
                func.count().filter(Execution.status == ExecutionStatus.running),
                func.count().filter(Execution.status == ExecutionStatus.queued),
            ).where(
                *_mine(Execution.owner_id, principal),
                or_(
                    Execution.created_at >= week,
                    Execution.status.in_((ExecutionStatus.queued, ExecutionStatus.running)),
                ),
            )
        )
    ).one()
    return Rate(row[0], row[1]), Rate(row[2], row[3]), row[4], row[5]


def _schedule_text(kind: str, cron: str | None, every: int | None, tz: str) -> str:
    if kind == "cron" and cron:
        return f"cron {cron} ({tz})"
    if kind == "interval" and every:
        return f"every {every} s"
    return kind


async def _next_runs(db: AsyncSession, principal: Principal) -> list[NextRun]:
    rows = (
        await db.execute(
            select(
                Event.id,
                Event.name,
                Event.next_fire_at,
                Event.schedule_kind,
                Event.cron,
                Event.interval_seconds,
                Event.timezone,
            )
            .where(
                Event.status == EventStatus.active,
                Event.next_fire_at.is_not(None),
                *_mine(Event.owner_id, principal),
            )
            .order_by(Event.next_fire_at, Event.id)
            .limit(NEXT_RUNS)
        )
    ).all()
    return [
        NextRun(r[0], r[1], r[2], _schedule_text(r[3].value, r[4], r[5], r[6]))
        for r in rows
        if r[2] is not None
    ]


def _newest(column: Any, order: tuple[Any, ...]) -> Any:
    """The value of `column` in the group's first row by `order` (an ordered array_agg)."""
    return func.array_agg(aggregate_order_by(column, *order))[1]


async def _failing(db: AsyncSession, principal: Principal, now: datetime) -> list[Failing]:
    """Events whose last run failed or that failed most in 7 days (a failing last run first)."""
    failed = Execution.status.in_(FAILED)
    newest = (Execution.created_at.desc(), Execution.id.desc())
    per_event = (
        select(
            Execution.event_id.label("event_id"),
            func.count().filter(failed).label("failures"),
            func.count().label("runs"),
            _newest(cast(Execution.status, Text), newest).label("last"),
            _newest(Execution.id, newest).label("last_id"),
            func.max(Execution.created_at).label("last_at"),
        )
        .where(
            Execution.created_at >= now - timedelta(days=7),
            Execution.status.in_(TERMINAL),
            *_mine(Execution.owner_id, principal),
        )
        .group_by(Execution.event_id)
        .subquery()
    )
    last_failed = per_event.c.last.in_([s.value for s in FAILED])
    rows = (
        await db.execute(
            select(
                Event.id,
                Event.name,
                per_event.c.failures,
                per_event.c.runs,
                per_event.c.last,
                per_event.c.last_id,
                per_event.c.last_at,
            )
            .join(per_event, per_event.c.event_id == Event.id)
            .where(per_event.c.failures > 0)
            .order_by(
                case((last_failed, 0), else_=1),
                per_event.c.failures.desc(),
                per_event.c.last_at.desc(),
            )
            .limit(FAILING)
        )
    ).all()
    return [Failing(r[0], r[1], r[2], r[3], str(r[4]), r[5], r[6]) for r in rows]


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, principal: PageUser, db: DbDep) -> HTMLResponse:
    now = datetime.now(UTC)
    day_rate, week_rate, running, queued = await _run_counts(db, principal, now)
    recent = (
        await db.execute(
            select(*RUN_COLUMNS)
            .join(Event, Event.id == Execution.event_id)
            .where(*_mine(Execution.owner_id, principal))
            .order_by(Execution.created_at.desc(), Execution.id.desc())
            .limit(RECENT_RUNS)
        )
    ).all()
    context: dict[str, Any] = {
        "events": await _event_counts(db, principal),
        "day": day_rate,
        "week": week_rate,
        "running": running,
        "queued": queued,
        "recent": run_rows(recent),
        "next_runs": await _next_runs(db, principal),
        "failing": await _failing(db, principal, now),
    }
    return render(request, "dashboard.html", principal, title="Dashboard", **context)
