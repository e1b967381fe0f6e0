"""Events CRUD, activation and pausing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import or_, select

from cronium.api.deps import CoreDep, DbDep, PrincipalDep, WriterDep
from cronium.api.listing import Page, PageDep, apply_sort, get_visible, paginate, visible
from cronium.api.schemas.events import EventIn, EventOut, EventPatch
from cronium.db.models import Event, EventStatus, EventType, Language
from cronium.domain.events import activate, compute_next_fire, event_out, save_event, stored_body
from cronium.errors import ValidationFailed

router = APIRouter(prefix="/events", tags=["events"])

_SORTS = {
    "name": Event.name,
    "created_at": Event.created_at,
    "updated_at": Event.updated_at,
    "status": Event.status,
    "type": Event.type,
    "next_fire_at": Event.next_fire_at,
}


@router.get("", response_model=Page[EventOut])
async def list_events(
    principal: PrincipalDep,
    db: DbDep,
    page: PageDep,
    status: EventStatus | None = None,
    type: EventType | None = None,
    language: Language | None = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    search: Annotated[str | None, Query(max_length=200, description="Substring of name or description.")] = None,
) -> Page[EventOut]:
    """List events you can see, filtered and sorted."""
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
            or_(Event.name.icontains(search, autoescape=True), Event.description.icontains(search, autoescape=True))
        )
    stmt = apply_sort(stmt, page.sort, _SORTS, "name", Event.id)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[await event_out(db, e) for e in items], total=total, limit=page.limit, offset=page.offset
    )


@router.post("", response_model=EventOut, status_code=201)
async def create_event(body: EventIn, principal: WriterDep, core: CoreDep, db: DbDep) -> EventOut:
    """Create an event."""
    event = Event(owner_id=principal.user_id, execution_count=0, env_keys=[], webhook_enabled=False)
    fields_set: dict[str, Any] = {name: True for name in body.model_fields_set}
    fields_set["env"] = True
    fields_set["webhook"] = {"secret": True} if "secret" in body.webhook.model_fields_set else {}
    await save_event(db, event, body, core.cipher, fields_set=fields_set)
    await db.refresh(event)
    return await event_out(db, event)


@router.get("/{event_id}", response_model=EventOut)
async def get_event(event_id: int, principal: PrincipalDep, db: DbDep) -> EventOut:
    """One event."""
    return await event_out(db, await get_visible(db, Event, event_id, principal, what="event"))


@router.patch("/{event_id}", response_model=EventOut)
async def update_event(
    event_id: int, patch: EventPatch, principal: WriterDep, core: CoreDep, db: DbDep
) -> EventOut:
    """Change some fields of an event; the result is validated as a whole."""
    event = await get_visible(db, Event, event_id, principal, for_write=True, what="event")
    merged = await stored_body(db, event)
    for key in patch.model_fields_set:
        merged[key] = _plain(getattr(patch, key))
    try:
        body = EventIn.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}]) from None
    webhook_fields = patch.webhook.model_fields_set if patch.webhook else set()
    fields_set: dict[str, Any] = {name: True for name in patch.model_fields_set}
    fields_set["webhook"] = {"secret": True} if "secret" in webhook_fields else {}
    await save_event(db, event, body, core.cipher, fields_set=fields_set)
    await db.refresh(event)
    return await event_out(db, event)


def _plain(value: Any) -> Any:
    """A patch value as plain data; nested objects keep only the fields the client sent."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@router.delete("/{event_id}", status_code=204)
async def delete_event(event_id: int, principal: WriterDep, db: DbDep) -> Response:
    """Delete an event with its history."""
    event = await get_visible(db, Event, event_id, principal, for_write=True, what="event")
    await db.delete(event)
    return Response(status_code=204)


@router.post("/{event_id}/activate", response_model=EventOut)
async def activate_event(event_id: int, principal: WriterDep, db: DbDep) -> EventOut:
    """Make the event active: its schedule starts firing."""
    event = await get_visible(db, Event, event_id, principal, for_write=True, what="event")
    if event.status is not EventStatus.active:
        activate(event)
    event.next_fire_at = compute_next_fire(event)
    await db.flush()
    await db.refresh(event)
    return await event_out(db, event)


@router.post("/{event_id}/pause", response_model=EventOut)
async def pause_event(event_id: int, principal: WriterDep, db: DbDep) -> EventOut:
    """Pause the event: no scheduled fires until it is activated again."""
    event = await get_visible(db, Event, event_id, principal, for_write=True, what="event")
    event.status = EventStatus.paused
    event.next_fire_at = None
    await db.flush()
    await db.refresh(event)
    return await event_out(db, event)
