"""Events CRUD, activation and pausing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ValidationError
from sqlalchemy import Select, or_, select, text

from cronium.api.deps import CoreDep, DbDep, Principal, PrincipalDep, WriterDep
from cronium.api.listing import Page, PageDep, apply_sort, get_visible, paginate, visible
from cronium.api.schemas.events import MAX_ID, EventIn, EventOut, EventPatch
from cronium.api.schemas.runs import RunIn, RunOut
from cronium.db.models import Event, EventStatus, EventType, Language, Trigger
from cronium.domain.events import (
    activate,
    compute_next_fire,
    event_out,
    events_out,
    save_event,
    stored_body,
)
from cronium.engine import queue
from cronium.engine.runner import concurrency_limit
from cronium.engine.scheduler import event_targets
from cronium.errors import Conflict, ValidationFailed

router = APIRouter(prefix="/events", tags=["events"])

EventId = Annotated[int, Path(ge=1, le=MAX_ID, description="The event's id.")]


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


EVENT_SORTS = {
    "name": Event.name,
    "created_at": Event.created_at,
    "updated_at": Event.updated_at,
    "status": Event.status,
    "type": Event.type,
    "next_fire_at": Event.next_fire_at,
}


def filtered_events(
    principal: Principal,
    status: EventStatus | None,
    type: EventType | None,
    language: Language | None,
    tag: str | None,
    search: str | None,
    sort: str | None,
) -> Select[tuple[Event]]:
    """The events list query (also used by the web UI's list, so both filter alike)."""
    stmt = visible(select(Event), Event.owner_id, principal)
    if status is not None:
        stmt = stmt.where(Event.status == status)
    if type is not None:
        stmt = stmt.where(Event.type == type)
    if language is not None:
        stmt = stmt.where(Event.language == language)
    if tag:
        stmt = stmt.where(Event.tags.contains([tag]))
    if search:
        stmt = stmt.where(
            or_(
                Event.name.icontains(search, autoescape=True),
                Event.description.icontains(search, autoescape=True),
            )
        )
    return apply_sort(stmt, sort, EVENT_SORTS, "name", Event.id)


@router.get("", response_model=Page[EventOut])
async def list_events(
    principal: PrincipalDep,
    db: DbDep,
    page: PageDep,
    status: EventStatus | None = None,
    type: EventType | None = None,
    language: Language | None = None,
    tag: Annotated[str | None, Query(max_length=50), AfterValidator(_no_nul)] = None,
    search: Annotated[
        str | None,
        Query(max_length=200, description="Substring of name or description."),
        AfterValidator(_no_nul),
    ] = None,
) -> Page[EventOut]:
    """List events you can see, filtered and sorted."""
    if page.offset > MAX_ID:
        raise ValidationFailed("offset: too large", details={"field": "offset"})
    stmt = filtered_events(principal, status, type, language, tag, search, page.sort)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=await events_out(db, items),
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=EventOut, status_code=201)
async def create_event(body: EventIn, principal: WriterDep, core: CoreDep, db: DbDep) -> EventOut:
    """Create an event."""
    event = Event(owner_id=principal.user_id, execution_count=0, env_keys=[], webhook_enabled=False)
    fields_set: dict[str, Any] = dict.fromkeys(body.model_fields_set, True)
    fields_set["env"] = True
    fields_set["webhook"] = {"secret": True} if "secret" in body.webhook.model_fields_set else {}
    await save_event(db, event, body, core.cipher, fields_set=fields_set)
    await notify_schedule_change(db, event.id)
    await db.refresh(event)
    return await event_out(db, event)


@router.get("/{event_id}", response_model=EventOut)
async def get_event(event_id: EventId, principal: PrincipalDep, db: DbDep) -> EventOut:
    """One event."""
    return await event_out(db, await get_visible(db, Event, event_id, principal, what="event"))


@router.patch("/{event_id}", response_model=EventOut)
async def update_event(
    event_id: EventId, patch: EventPatch, principal: WriterDep, core: CoreDep, db: DbDep
) -> EventOut:
    """Change some fields of an event; the result is validated as a whole."""
    event = await get_visible(db, Event, event_id, principal, for_write=True, what="event")
    merged = await stored_body(db, event)
    for key in patch.model_fields_set:
        merged[key] = _plain(getattr(patch, key))
    if patch.webhook is not None:
        # The webhook keeps write-only state: a patch of it changes only what it names.
        merged["webhook"] = {"enabled": event.webhook_enabled, **merged["webhook"]}
    try:
        body = EventIn.model_validate(merged)
    except ValidationError as exc:
        # Reported like a body that failed to parse: every error, with its field.
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    webhook_fields = patch.webhook.model_fields_set if patch.webhook else set()
    fields_set: dict[str, Any] = dict.fromkeys(patch.model_fields_set, True)
    fields_set["webhook"] = {"secret": True} if "secret" in webhook_fields else {}
    await save_event(db, event, body, core.cipher, fields_set=fields_set)
    await notify_schedule_change(db, event.id)
    await db.refresh(event)
    return await event_out(db, event)


async def notify_schedule_change(db: DbDep, event_id: int) -> None:
    """Wake the scheduler (on commit) so a new or changed schedule fires on time."""
    await db.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": queue.SCHEDULES_CHANNEL, "payload": str(event_id)},
    )


def _plain(value: Any) -> Any:
    """A patch value as plain data; nested objects keep only the fields the client sent."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@router.delete("/{event_id}", status_code=204)
async def delete_event(event_id: EventId, principal: WriterDep, db: DbDep) -> Response:
    """Delete an event with its history."""
    event = await get_visible(db, Event, event_id, principal, for_write=True, what="event")
    await db.delete(event)
    return Response(status_code=204)


@router.post("/{event_id}/activate", response_model=EventOut)
async def activate_event(event_id: EventId, principal: WriterDep, db: DbDep) -> EventOut:
    """Make the event active: its schedule starts firing."""
    event = await get_visible(db, Event, event_id, principal, for_write=True, what="event")
    if event.status is not EventStatus.active:
        activate(event)
    event.next_fire_at = compute_next_fire(event)
    await db.flush()
    await notify_schedule_change(db, event.id)
    await db.refresh(event)
    return await event_out(db, event)


@router.post("/{event_id}/pause", response_model=EventOut)
async def pause_event(event_id: EventId, principal: WriterDep, db: DbDep) -> EventOut:
    """Pause the event: no scheduled fires until it is activated again."""
    event = await get_visible(db, Event, event_id, principal, for_write=True, what="event")
    event.status = EventStatus.paused
    event.next_fire_at = None
    await db.flush()
    await notify_schedule_change(db, event.id)
    await db.refresh(event)
    return await event_out(db, event)


@router.post("/{event_id}/run", response_model=RunOut, status_code=202)
async def run_event(
    event_id: EventId, principal: WriterDep, core: CoreDep, db: DbDep, body: RunIn | None = None
) -> RunOut:
    """Run the event now; answers at once with the execution id."""
    event = await get_visible(db, Event, event_id, principal, what="event")
    if event.status is EventStatus.archived:
        raise Conflict(f"event {event_id} is archived: restore it before running it")
    run_input = body.input if body is not None and body.input is not None else event.input
    async with core.db.acquire() as conn, conn.transaction():
        targets = await event_targets(conn, event.id, event.run_local)
        execution_id = await queue.enqueue(
            conn,
            queue.NewExecution(
                event_id=event.id,
                owner_id=event.owner_id,
                trigger=Trigger.manual,
                targets=targets,
                input=run_input,
                triggered_by_user_id=principal.user_id,
                triggered_by=f"user:{principal.email}",
                max_attempts=event.retries + 1,
                retry_backoff_s=event.retry_backoff_seconds,
                concurrency_limit=concurrency_limit(
                    event.overlap_policy.value, event.max_concurrent
                ),
            ),
        )
    assert execution_id is not None
    return RunOut(execution_id=execution_id)
