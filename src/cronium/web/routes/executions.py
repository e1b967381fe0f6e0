"""Execution pages: the runs list (filters, paging over HTMX) and one run with its live log.

Pages only read; cancelling goes through the REST API from the page's JavaScript, and the
live log comes from the WebSocket stream, so this module never touches the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.deps import DbDep, Principal
from cronium.api.listing import get_visible
from cronium.api.routers.executions import TERMINAL
from cronium.api.schemas.events import MAX_ID
from cronium.db.models import Event, Execution, ExecutionStatus, Job, Trigger
from cronium.web.deps import PageUser
from cronium.web.pages import is_htmx
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
EVENT_CHOICES = 500  # the event filter lists at most this many events, by name
ACTIVE = (ExecutionStatus.queued, ExecutionStatus.running)
# The run page keeps this many of the newest log lines (a browser slows down with hundreds
# of thousands of nodes) and links the logs API for the rest.
LOG_LINES_SHOWN = 20_000


@dataclass(frozen=True)
class RunRow:
    """One line of a runs table (list, dashboard, monitoring)."""

    id: int
    event_id: int
    event_name: str
    status: str
    trigger: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


RUN_COLUMNS = (
    Execution.id,
    Execution.event_id,
    Event.name,
    Execution.status,
    Execution.trigger,
    Execution.created_at,
    Execution.started_at,
    Execution.finished_at,
)


def run_rows(rows: Any) -> list[RunRow]:
    return [
        RunRow(r[0], r[1], r[2], str(r[3].value), str(r[4].value), r[5], r[6], r[7]) for r in rows
    ]


def scoped(stmt: Select[Any], principal: Principal) -> Select[Any]:
    """Users see their own runs; admins and viewers see every run."""
    return stmt if principal.sees_all else stmt.where(Execution.owner_id == principal.user_id)


def _pretty(value: Any) -> str | None:
    return None if value is None else json.dumps(value, indent=2, sort_keys=True, default=str)


E = TypeVar("E", ExecutionStatus, Trigger)


def _choice(kind: type[E], raw: str) -> E | None:
    try:
        return kind(raw) if raw else None
    except ValueError:
        return None


def _number(raw: str, largest: int) -> int | None:
    """A positive id or page number from a query string; anything else is None."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if 0 < value <= largest else None


async def _event_choices(db: AsyncSession, principal: Principal) -> list[tuple[int, str]]:
    stmt = select(Event.id, Event.name).order_by(Event.name, Event.id).limit(EVENT_CHOICES)
    if not principal.sees_all:
        stmt = stmt.where(Event.owner_id == principal.user_id)
    return [(r[0], r[1]) for r in (await db.execute(stmt)).all()]


@router.get("/executions", response_class=HTMLResponse)
async def executions_page(
    request: Request,
    principal: PageUser,
    db: DbDep,
    status_: Annotated[str, Query(alias="status", max_length=32)] = "",
    event: Annotated[str, Query(alias="event_id", max_length=20)] = "",
    trigger_: Annotated[str, Query(alias="trigger", max_length=32)] = "",
    page_: Annotated[str, Query(alias="page", max_length=8)] = "1",
) -> HTMLResponse:
    """All visible runs, newest first; HTMX asks for the table alone when filters change.

    Filters arrive from a plain GET form, so an empty or unknown value means "any".
    """
    status = _choice(ExecutionStatus, status_)
    trigger = _choice(Trigger, trigger_)
    event_id = _number(event, MAX_ID)
    page = _number(page_, 10**7) or 1
    conditions: list[Any] = []
    if not principal.sees_all:
        conditions.append(Execution.owner_id == principal.user_id)
    if status is not None:
        conditions.append(Execution.status == status)
    if event_id is not None:
        conditions.append(Execution.event_id == event_id)
    if trigger is not None:
        conditions.append(Execution.trigger == trigger)
    total = int(
        await db.scalar(select(func.count()).select_from(Execution).where(*conditions)) or 0
    )
    stmt = (
        select(*RUN_COLUMNS)
        .join(Event, Event.id == Execution.event_id)
        .where(*conditions)
        .order_by(Execution.created_at.desc(), Execution.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    rows = run_rows((await db.execute(stmt)).all())
    pages = max(1, -(-total // PAGE_SIZE))
    query = {
        k: v
        for k, v in (
            ("status", status.value if status else None),
            ("event_id", event_id),
            ("trigger", trigger.value if trigger else None),
        )
        if v is not None
    }
    context: dict[str, Any] = {
        "runs": rows,
        "total": total,
        "page": page,
        "pages": pages,
        "query": query,
        "filters": {"status": status, "event_id": event_id, "trigger": trigger},
    }
    if is_htmx(request):
        response = render(request, "executions/_table.html", principal, title="Runs", **context)
        # The address bar shows only the filters in use (a form sends the empty ones too).
        canonical = dict(query, page=page) if page > 1 else query
        response.headers["HX-Push-Url"] = "/executions" + (
            "?" + urlencode(canonical) if canonical else ""
        )
        return response
    return render(
        request,
        "executions/list.html",
        principal,
        title="Runs",
        statuses=[s.value for s in ExecutionStatus],
        triggers=[t.value for t in Trigger],
        events=await _event_choices(db, principal),
        **context,
    )


async def _execution_context(
    db: AsyncSession, principal: Principal, execution_id: int
) -> dict[str, Any]:
    ex = await get_visible(db, Execution, execution_id, principal, what="execution")
    event = await db.get(Event, ex.event_id)
    jobs = list(
        (await db.scalars(select(Job).where(Job.execution_id == ex.id).order_by(Job.id))).all()
    )
    queue_wait = run_time = None
    if ex.started_at is not None:
        queue_wait = (ex.started_at - ex.created_at).total_seconds()
        if ex.finished_at is not None:
            run_time = (ex.finished_at - ex.started_at).total_seconds()
    return {
        "ex": ex,
        "event": event,
        "jobs": jobs,
        "targets": [job.target for job in jobs],
        "attempt": max((job.attempt for job in jobs), default=1),
        "max_attempts": max((job.max_attempts for job in jobs), default=1),
        "queue_wait": queue_wait,
        "run_time": run_time,
        "finished": ex.status in TERMINAL,
        "cancellable": ex.status in ACTIVE,
        "output_json": _pretty(ex.output),
        "input_json": _pretty(ex.input),
    }


ExecutionId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
async def execution_page(
    request: Request, execution_id: ExecutionId, principal: PageUser, db: DbDep
) -> HTMLResponse:
    context = await _execution_context(db, principal, execution_id)
    return render(
        request,
        "executions/detail.html",
        principal,
        title=f"Run #{execution_id}",
        as_page=True,
        log_lines_shown=LOG_LINES_SHOWN,
        **context,
    )


@router.get("/executions/{execution_id}/summary", response_class=HTMLResponse)
async def execution_summary(
    request: Request, execution_id: ExecutionId, principal: PageUser, db: DbDep
) -> HTMLResponse:
    """The run's facts alone: the page reloads them when the stream reports a new status."""
    context = await _execution_context(db, principal, execution_id)
    return render(
        request, "executions/_summary.html", principal, title=f"Run #{execution_id}", **context
    )
