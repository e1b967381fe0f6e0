"""The event editor (new and edit) and its live schedule preview.

The editor page carries the stored event and the owner's servers, credentials, templates
and events as JSON; events-editor.js builds the API body and posts it to the REST API, so
the browser shows exactly the API's validation errors.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadDateError
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.deps import DbDep
from cronium.api.listing import get_visible
from cronium.api.schemas.events import MAX_ID
from cronium.db.models import (
    ActionTrigger,
    Event,
    EventStatus,
    EventType,
    Language,
    MisfirePolicy,
    OverlapPolicy,
    ScheduleKind,
    Server,
    ToolCredential,
)
from cronium.db.models.resources import ActionTemplate
from cronium.domain.events import event_out, schedule_dict
from cronium.domain.schedules import next_fires, next_interval_fire, parse_timezone, validate_cron
from cronium.errors import NotFound, ValidationFailed
from cronium.tools.registry import catalogue
from cronium.web.deps import PageUser
from cronium.web.pages import require_writer
from cronium.web.render import render

router = APIRouter(include_in_schema=False)
READ_ONLY = "Viewers can look at events but not create or change them."

PREVIEW_COUNT = 5
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
Param = Annotated[str | None, Query(max_length=200)]


@cache
def timezones() -> list[str]:
    """Every IANA zone the API accepts, UTC first."""
    return ["UTC", *sorted(z for z in available_timezones() if "/" in z and z != "posixrules")]


@cache
def tool_actions() -> list[dict[str, Any]]:
    """Each tool's action names (the catalogue is fixed while the process runs)."""
    return [
        {"tool": t["tool"], "actions": [a["qualified_name"] for a in t["actions"]]}
        for t in catalogue()
    ]


def schedule_text(event: Event) -> str:
    """A one-line description of an event's schedule for lists and summaries."""
    kind = event.schedule_kind
    if kind is ScheduleKind.cron:
        return f"cron {event.cron} ({event.timezone})"
    if kind is ScheduleKind.interval and event.interval_seconds:
        return "every " + _every(event.interval_seconds)
    if kind is ScheduleKind.once and event.run_at:
        return "once at " + event.run_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "manual"


def _every(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def webhook_url(request: Request, key: str | None) -> str | None:
    if not key:
        return None
    return str(request.base_url).rstrip("/") + f"/api/v1/webhooks/{key}"


@router.get("/events/new", response_class=HTMLResponse)
async def new_event(request: Request, principal: PageUser, db: DbDep) -> HTMLResponse:
    require_writer(principal, READ_ONLY)
    return await _editor(request, principal, db, None)


@router.get("/events/{event_id:int}/edit", response_class=HTMLResponse)
async def edit_event(
    request: Request, principal: PageUser, db: DbDep, event_id: int
) -> HTMLResponse:
    require_writer(principal, READ_ONLY)
    if event_id > MAX_ID:
        raise NotFound(f"event {event_id} not found")
    event = await get_visible(db, Event, event_id, principal, for_write=True, lock=False)
    return await _editor(request, principal, db, event)


async def _editor(
    request: Request, principal: PageUser, db: DbDep, event: Event | None
) -> HTMLResponse:
    owner_id = event.owner_id if event else principal.user_id
    stored: dict[str, Any] | None = None
    if event is not None:
        stored = (await event_out(db, event)).model_dump(mode="json")
        stored["schedule"] = _schedule_json(event)
    data = {
        "event": stored,
        **await _choices(db, owner_id, event.id if event else None),
        "tools": tool_actions(),
    }
    return render(
        request,
        "events/editor.html",
        principal,
        title=f"Edit {event.name}" if event else "New event",
        event=event,
        stored=stored,
        data=data,
        timezones=timezones(),
        types=list(EventType),
        languages=list(Language),
        statuses=[s for s in EventStatus if s is not EventStatus.archived or event],
        triggers=list(ActionTrigger),
        misfire_policies=list(MisfirePolicy),
        overlap_policies=list(OverlapPolicy),
        servers=data["servers"],
        webhook_url=webhook_url(request, event.webhook_key) if event else None,
    )


def _schedule_json(event: Event) -> dict[str, Any]:
    sched = schedule_dict(event)
    if isinstance(sched.get("at"), datetime):
        sched["at"] = sched["at"].astimezone(UTC).isoformat()
    return sched


async def _choices(db: AsyncSession, owner_id: int, event_id: int | None) -> dict[str, Any]:
    """What the owner's event may point at: servers, credentials, templates, other events."""
    servers = await db.execute(
        select(Server.id, Server.name, Server.host, Server.status)
        .where(Server.owner_id == owner_id)
        .order_by(Server.name)
        .limit(500)
    )
    creds = await db.execute(
        select(ToolCredential.id, ToolCredential.name, ToolCredential.tool)
        .where(ToolCredential.owner_id == owner_id)
        .order_by(ToolCredential.name)
        .limit(500)
    )
    templates = await db.execute(
        select(ActionTemplate.id, ActionTemplate.name, ActionTemplate.tool, ActionTemplate.action)
        .where(ActionTemplate.owner_id == owner_id)
        .order_by(ActionTemplate.name)
        .limit(500)
    )
    events = await db.execute(
        select(Event.id, Event.name)
        .where(Event.owner_id == owner_id)
        .order_by(Event.name)
        .limit(1000)
    )
    return {
        "servers": [
            {"id": i, "name": n, "host": h, "status": s.value} for i, n, h, s in servers.all()
        ],
        "credentials": [{"id": i, "name": n, "tool": t.value} for i, n, t in creds.all()],
        "templates": [
            {"id": i, "name": n, "tool": t.value, "action": a} for i, n, t, a in templates.all()
        ],
        "events": [{"id": i, "name": n} for i, n in events.all() if i != event_id],
    }


# ---- schedule preview -----------------------------------------------------------------------


@router.get("/events/schedule-preview", response_class=HTMLResponse)
async def schedule_preview(
    request: Request,
    principal: PageUser,
    kind: Annotated[str, Query(alias="schedule.kind", max_length=20)] = "manual",
    cron: Annotated[str | None, Query(alias="schedule.cron", max_length=200)] = None,
    timezone: Annotated[str | None, Query(alias="schedule.timezone", max_length=64)] = None,
    interval_value: Param = None,
    interval_unit: Param = None,
    at: Annotated[str | None, Query(alias="schedule.at", max_length=64)] = None,
    start_at: Param = None,
) -> HTMLResponse:
    """The next fire times of the schedule being edited, or why it cannot fire."""
    zone_name = timezone or "UTC"
    fires: list[datetime] = []
    error: str | None = None
    note: str | None = None
    try:
        zone = parse_timezone(zone_name)
        after = max(
            datetime.now(UTC), _parse_time(start_at, "start") or datetime.min.replace(tzinfo=UTC)
        )
        if kind == "cron":
            fires = _cron_fires(cron or "", zone_name, after)
        elif kind == "interval":
            fires = _interval_fires(interval_value, interval_unit, _parse_time(start_at, "start"))
        elif kind == "once":
            when = _parse_time(at, "time")
            if when is None:
                raise ValidationFailed("choose the date and time to run at")
            fires = [when]
            if when <= datetime.now(UTC):
                note = "This time has passed: the event will not fire."
        else:
            note = "Runs only when started by hand, by a webhook, an action or a workflow."
    except ValidationFailed as exc:
        error, zone = exc.message, ZoneInfo("UTC")
    return render(
        request,
        "events/_preview.html",
        principal,
        title="Schedule preview",
        fires=[(f.astimezone(zone), f.astimezone(UTC)) for f in fires],
        zone=zone_name,
        error=error,
        note=note,
    )


def _parse_time(value: str | None, what: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"the {what} {value!r} is not a date and time") from None
    if parsed.tzinfo is None:
        raise ValidationFailed(f"the {what} needs a timezone")
    return parsed.astimezone(UTC)


def _cron_fires(expression: str, zone: str, after: datetime) -> list[datetime]:
    if not expression.strip():
        raise ValidationFailed("enter a cron expression, e.g. */5 * * * *")
    normalised = validate_cron(expression)
    try:
        return next_fires(normalised, zone, after, count=PREVIEW_COUNT)
    except (OverflowError, CroniterBadDateError):
        raise ValidationFailed("this expression never fires before the year 9999") from None


def _interval_fires(value: str | None, unit: str | None, start: datetime | None) -> list[datetime]:
    try:
        seconds = int(value or "") * UNITS.get(unit or "minutes", 60)
    except ValueError:
        raise ValidationFailed("enter a whole number for the interval") from None
    if seconds <= 0 or seconds > 366 * 86400:
        raise ValidationFailed("the interval must be between 1 second and 366 days")
    now = datetime.now(UTC)
    first = next_interval_fire(start or now, seconds, now)
    return [first + timedelta(seconds=seconds * i) for i in range(PREVIEW_COUNT)]
