"""Events pages: the filtered list and one event's page with its run history.

Pages read through the same query code as the REST API (`filtered_events`); every change
goes through the REST API from the browser (app.js), so both validate alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.deps import DbDep
from cronium.api.listing import PageParams, get_visible, paginate
from cronium.api.routers.events import EVENT_SORTS, filtered_events
from cronium.api.schemas.events import MAX_ID
from cronium.db.models import (
    ActionType,
    Event,
    EventAction,
    EventServer,
    EventStatus,
    EventType,
    Execution,
    ExecutionStatus,
    Language,
    Server,
    ToolCredential,
    User,
)
from cronium.errors import NotFound
from cronium.web.deps import PageUser
from cronium.web.pages import lenient_offset, list_url, owner_emails, wants_fragment
from cronium.web.render import render
from cronium.web.routes import events_editor
from cronium.web.routes.events_editor import schedule_text, webhook_url

router = APIRouter(include_in_schema=False)
# /events/new and /events/schedule-preview are matched before /events/{id}.
router.include_router(events_editor.router)

PAGE_SIZE = 25
HISTORY_SIZE = 20
E = TypeVar("E", bound=Enum)
Text = Annotated[str | None, Query()]
LIVE = (ExecutionStatus.queued, ExecutionStatus.running)
SCHEDULED_SOON = timedelta(minutes=5)


def _enum(kind: type[E], value: str | None) -> E | None:
    """A filter value from the query string; an unknown one means no filter, not an error."""
    try:
        return kind(value) if value else None
    except ValueError:
        return None


def _clean(value: str | None) -> str | None:
    return value.replace("\x00", "").strip()[:200] or None if value else None


@router.get("/events", response_class=HTMLResponse)
async def events_page(
    request: Request,
    principal: PageUser,
    db: DbDep,
    search: Text = None,
    status: Text = None,
    type: Text = None,
    tag: Text = None,
    language: Text = None,
    sort: Text = None,
    offset: Text = None,
) -> HTMLResponse:
    """The events list; an HTMX request gets only the table (filters, sorting, paging)."""
    search, tag = _clean(search), _clean(tag)
    if not sort or sort.lstrip("-") not in EVENT_SORTS:
        sort = "name"
    stmt = filtered_events(
        principal,
        _enum(EventStatus, status),
        _enum(EventType, type),
        _enum(Language, language),
        tag,
        search,
        sort,
    )
    events, total = await paginate(db, stmt, PageParams(PAGE_SIZE, lenient_offset(offset), sort))
    params = {
        "search": search,
        "status": _enum(EventStatus, status),
        "type": _enum(EventType, type),
        "tag": tag,
        "language": _enum(Language, language),
        "sort": sort,
    }
    context: dict[str, Any] = {
        "events": events,
        "total": total,
        "offset": lenient_offset(offset),
        "page_size": PAGE_SIZE,
        "params": params,
        "sort": sort,
        "url": lambda **changes: list_url("/events", params, **changes),
        "last_runs": await _last_runs(db, [e.id for e in events]),
        "owners": await owner_emails(db, principal, (e.owner_id for e in events)),
        "schedule_text": schedule_text,
    }
    if wants_fragment(request):
        response = render(request, "events/_table.html", principal, title="Events", **context)
    else:
        response = await _list_page(request, principal, db, context)
    # The same URL answers a fragment or a page: caches must keep them apart.
    response.headers["Vary"] = "HX-Request"
    return response


async def _list_page(
    request: Request, principal: PageUser, db: AsyncSession, context: dict[str, Any]
) -> HTMLResponse:
    """The whole list page: the table plus the filter bar with the tags in use."""
    tags = await _tags(db, principal.user_id if not principal.sees_all else None)
    return render(
        request,
        "events/list.html",
        principal,
        title="Events",
        tags=tags,
        statuses=list(EventStatus),
        types=list(EventType),
        languages=list(Language),
        **context,
    )


async def _last_runs(db: AsyncSession, event_ids: list[int]) -> dict[int, Execution]:
    """Each listed event's latest run: one query, one index probe per event (LATERAL)."""
    if not event_ids:
        return {}
    latest = (
        select(Execution)
        .where(Execution.event_id == Event.id)
        .order_by(Execution.created_at.desc())
        .limit(1)
        .lateral()
    )
    rows = await db.execute(
        select(Event.id, latest.c.id, latest.c.status, latest.c.created_at)
        .select_from(Event)
        .join(latest, true())
        .where(Event.id.in_(event_ids))
    )
    return {
        event_id: Execution(id=run_id, status=status, created_at=created)
        for event_id, run_id, status, created in rows.all()
    }


async def _tags(db: AsyncSession, owner_id: int | None) -> list[str]:
    """The tags in use (for the tag filter), at most 200."""
    tag = func.unnest(Event.tags).label("tag")
    inner = select(tag)
    if owner_id is not None:
        inner = inner.where(Event.owner_id == owner_id)
    sub = inner.subquery()
    rows = await db.scalars(select(sub.c.tag).distinct().order_by(sub.c.tag).limit(200))
    return list(rows.all())


# ---- one event ------------------------------------------------------------------------------


@router.get("/events/{event_id:int}", response_class=HTMLResponse)
async def event_page(
    request: Request,
    principal: PageUser,
    db: DbDep,
    event_id: int,
    run_status: Text = None,
    offset: Text = None,
) -> HTMLResponse:
    """Summary, actions, run now and the run history of one event."""
    event = await _event(db, event_id, principal)
    owner = await db.scalar(select(User.email).where(User.id == event.owner_id))
    servers = (
        await db.execute(
            select(Server.id, Server.name)
            .join(EventServer, EventServer.server_id == Server.id)
            .where(EventServer.event_id == event.id)
            .order_by(Server.name)
        )
    ).all()
    actions = await _actions(db, event.id)
    history = await _history(
        db, event.id, _enum(ExecutionStatus, run_status), lenient_offset(offset)
    )
    return render(
        request,
        "events/event.html",
        principal,
        title=event.name,
        event=event,
        owner=owner,
        servers=servers,
        actions=actions,
        schedule=schedule_text(event),
        next_local=_in_zone(event.next_fire_at, event.timezone),
        webhook_url=webhook_url(request, event.webhook_key) if event.webhook_enabled else None,
        **history,
    )


@router.get("/events/{event_id:int}/history", response_class=HTMLResponse)
async def history_fragment(
    request: Request,
    principal: PageUser,
    db: DbDep,
    event_id: int,
    run_status: Text = None,
    offset: Text = None,
) -> HTMLResponse:
    """The run history table alone: status filter, paging and the live refresh."""
    event = await _event(db, event_id, principal)
    history = await _history(
        db, event.id, _enum(ExecutionStatus, run_status), lenient_offset(offset)
    )
    return render(
        request, "events/_history.html", principal, title=event.name, event=event, **history
    )


def _in_zone(when: datetime | None, zone: str) -> str | None:
    """A time on the event's own clock, when that is not UTC."""
    if when is None or zone == "UTC":
        return None
    try:
        local = when.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or zone)


async def _event(db: AsyncSession, event_id: int, principal: PageUser) -> Event:
    if event_id > MAX_ID:  # beyond bigint: no such row (and no query that would fail)
        raise NotFound(f"event {event_id} not found")
    return await get_visible(db, Event, event_id, principal, what="event")


async def _actions(db: AsyncSession, event_id: int) -> list[dict[str, Any]]:
    """The conditional actions with the names of what they point at (one query)."""
    target = select(Event.name).where(Event.id == EventAction.target_event_id).scalar_subquery()
    cred = (
        select(ToolCredential.name)
        .where(ToolCredential.id == EventAction.credential_id)
        .scalar_subquery()
    )
    rows = await db.execute(
        select(EventAction, target, cred)
        .where(EventAction.event_id == event_id)
        .order_by(EventAction.position)
    )
    out = []
    for action, target_name, cred_name in rows.all():
        if action.type is ActionType.run_event:
            what = f"run event “{target_name}”"
        else:
            what = f"{action.action} via “{cred_name}”"
        when = action.on.value.replace("_", " ")
        if action.condition is not None:
            when += f" = {str(action.condition).lower()}"
        out.append({"when": when, "what": what, "event_id": action.target_event_id})
    return out


async def _history(
    db: AsyncSession, event_id: int, status: ExecutionStatus | None, offset: int
) -> dict[str, Any]:
    """A page of the event's runs, newest first (ix_executions_event_created)."""
    stmt = select(Execution).where(Execution.event_id == event_id)
    if status is not None:
        stmt = stmt.where(Execution.status == status)
    runs, total = await paginate(
        db,
        stmt.order_by(Execution.created_at.desc(), Execution.id.desc()),
        PageParams(HISTORY_SIZE, offset, None),
    )
    # Live while a run is in flight, and while a scheduled fire is near: the first run of a
    # new schedule then shows up without a reload.
    soon = datetime.now(UTC) + SCHEDULED_SOON
    live = any(run.status in LIVE for run in runs) or bool(
        await db.scalar(
            select(
                select(Execution.id)
                .where(Execution.event_id == event_id, Execution.status.in_(LIVE))
                .exists()
                | select(Event.id)
                .where(
                    Event.id == event_id,
                    Event.status == EventStatus.active,
                    Event.next_fire_at <= soon,
                )
                .exists()
            )
        )
    )
    params = {"run_status": status}
    base = f"/events/{event_id}/history"
    return {
        "runs": runs,
        "runs_total": total,
        "runs_offset": offset,
        "history_size": HISTORY_SIZE,
        "run_status": status,
        "run_statuses": list(ExecutionStatus),
        "live": live,
        "history_url": lambda **changes: list_url(base, params, **changes),
        "now": datetime.now().astimezone(),
    }
