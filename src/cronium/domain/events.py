"""Event rules: mapping the contract's shape to rows, references, schedules."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.schemas.events import (
    ActionIn,
    ActionOut,
    EventIn,
    EventOut,
    Resources,
    Targets,
    WebhookOut,
)
from cronium.db.models import (
    ActionType,
    Event,
    EventAction,
    EventServer,
    EventStatus,
    ScheduleKind,
    Server,
    ToolCredential,
    Workflow,
)
from cronium.domain.action_params import check_event_tool_params
from cronium.domain.schedules import next_fires, next_interval_fire
from cronium.errors import Conflict, ValidationFailed
from cronium.security.crypto import Cipher


def schedule_dict(event: Event | Workflow) -> dict[str, Any]:
    kind = event.schedule_kind
    if kind is ScheduleKind.cron:
        return {"kind": "cron", "cron": event.cron, "timezone": event.timezone}
    if kind is ScheduleKind.interval:
        return {"kind": "interval", "every_seconds": event.interval_seconds}
    if kind is ScheduleKind.once:
        return {"kind": "once", "at": event.run_at}
    return {"kind": "manual"}


def compute_next_fire(event: Event | Workflow, now: datetime | None = None) -> datetime | None:
    """When an active event (or workflow) fires next (None: manual, paused or finished)."""
    if event.status is not EventStatus.active:
        return None
    if isinstance(event, Event) and (
        event.max_executions is not None and event.execution_count >= event.max_executions
    ):
        return None
    now = now or datetime.now(UTC)
    after = now
    if event.start_at is not None and event.start_at > now:
        # The start itself may be the first fire: look from just before it.
        after = event.start_at - timedelta(microseconds=1)
    try:
        if event.schedule_kind is ScheduleKind.cron and event.cron:
            return next_fires(event.cron, event.timezone, after, count=1)[0]
        if event.schedule_kind is ScheduleKind.interval and event.interval_seconds:
            return next_interval_fire(event.start_at or now, event.interval_seconds, after)
    except (OverflowError, CroniterBadDateError):
        return None  # the next fire would be after the year 9999: there is none
    if event.schedule_kind is ScheduleKind.once:
        return event.run_at
    return None


async def _check_references(
    db: AsyncSession, owner_id: int, body: EventIn, event_id: int | None
) -> None:
    """Servers, target events and credentials must belong to the event's owner."""
    server_ids = set(body.targets.server_ids)
    if server_ids:
        found = set(
            (
                await db.scalars(
                    select(Server.id).where(Server.id.in_(server_ids), Server.owner_id == owner_id)
                )
            ).all()
        )
        missing = sorted(server_ids - found)
        if missing:
            raise ValidationFailed(
                f"targets.server_ids: server {missing[0]} not found",
                details={"field": "targets.server_ids"},
            )
    event_ids = {a.event_id for a in body.actions if a.type is ActionType.run_event and a.event_id}
    event_ids.discard(event_id)  # an event may trigger itself; the chain depth limit stops loops
    if event_ids:
        found = set(
            (
                await db.scalars(
                    select(Event.id).where(Event.id.in_(event_ids), Event.owner_id == owner_id)
                )
            ).all()
        )
        missing = sorted(event_ids - found)
        if missing:
            raise ValidationFailed(
                f"actions: event {missing[0]} not found", details={"field": "actions"}
            )
    cred_ids = {a.credential_id for a in body.actions if a.credential_id}
    if body.tool is not None:
        cred_ids.add(body.tool.credential_id)
    if cred_ids:
        found = set(
            (
                await db.scalars(
                    select(ToolCredential.id).where(
                        ToolCredential.id.in_(cred_ids), ToolCredential.owner_id == owner_id
                    )
                )
            ).all()
        )
        missing = sorted(cred_ids - found)
        if missing:
            raise ValidationFailed(
                f"credential {missing[0]} not found", details={"field": "credential_id"}
            )


async def _check_unique_name(
    db: AsyncSession, owner_id: int, name: str, event_id: int | None
) -> None:
    stmt = select(Event.id).where(Event.owner_id == owner_id, Event.name == name)
    if event_id is not None:
        stmt = stmt.where(Event.id != event_id)
    if await db.scalar(stmt) is not None:
        raise Conflict(f"you already have an event named {name!r}", details={"field": "name"})


def _apply_schedule(event: Event, body: EventIn) -> None:
    sched = body.schedule
    event.schedule_kind = ScheduleKind(sched.kind)
    event.cron = getattr(sched, "cron", None)
    event.timezone = getattr(sched, "timezone", None) or "UTC"
    event.interval_seconds = getattr(sched, "every_seconds", None)
    event.run_at = getattr(sched, "at", None)


def _apply_webhook(
    event: Event, body: EventIn, cipher: Cipher, webhook_set: dict[str, Any]
) -> None:
    hook = body.webhook
    event.webhook_enabled = hook.enabled
    if hook.enabled and (event.webhook_key is None or hook.regenerate_key):
        event.webhook_key = secrets.token_urlsafe(24)
    if "secret" in webhook_set:
        event.webhook_secret_encrypted = cipher.encrypt_str(hook.secret) if hook.secret else None


async def save_event(
    db: AsyncSession,
    event: Event,
    body: EventIn,
    cipher: Cipher,
    *,
    fields_set: dict[str, Any],
) -> Event:
    """Write a validated body into `event` (new or existing), with its servers and actions."""
    await _check_unique_name(db, event.owner_id, body.name, event.id)
    await _check_references(db, event.owner_id, body, event.id)
    await check_event_tool_params(db, event.owner_id, body)
    is_new = event.id is None
    was_active = event.status is EventStatus.active
    scalar_fields = (
        "name",
        "description",
        "type",
        "language",
        "content",
        "status",
        "start_at",
        "max_executions",
        "reset_counter_on_activate",
        "misfire_policy",
        "misfire_window_seconds",
        "overlap_policy",
        "max_concurrent",
        "timeout_seconds",
        "retries",
        "retry_backoff_seconds",
        "input",
        "image",
        "network",
        "tags",
    )
    for name in scalar_fields:
        setattr(event, name, getattr(body, name))
    event.http_spec = body.http.model_dump() if body.http else None
    event.tool_spec = body.tool.model_dump() if body.tool else None
    _apply_schedule(event, body)
    event.run_local = body.targets.local
    event.cpu, event.memory_mb, event.pids = (
        body.resources.cpu,
        body.resources.memory_mb,
        body.resources.pids,
    )
    if "env" in fields_set:
        env = body.env or {}
        event.env_encrypted = cipher.encrypt_json(env) if env else None
        event.env_keys = sorted(env)
    _apply_webhook(event, body, cipher, fields_set.get("webhook") or {})
    if body.status is EventStatus.active and not was_active:
        activate(event)
    event.next_fire_at = compute_next_fire(event)
    if is_new:
        db.add(event)
    try:
        await db.flush()
    except IntegrityError as exc:
        # Two requests raced past _check_unique_name; the unique constraint decided.
        if "uq_events_owner_name" in str(exc.orig):
            raise Conflict(
                f"you already have an event named {body.name!r}", details={"field": "name"}
            ) from None
        raise
    if is_new or "targets" in fields_set:
        await _replace_servers(db, event.id, body.targets.server_ids)
    if is_new or "actions" in fields_set:
        await _replace_actions(db, event.id, body.actions)
    return event


def activate(event: Event) -> None:
    """Status to active; reset the execution counter when the event asks for it."""
    if event.reset_counter_on_activate:
        event.execution_count = 0
    event.status = EventStatus.active


async def _replace_servers(db: AsyncSession, event_id: int, server_ids: list[int]) -> None:
    await db.execute(delete(EventServer).where(EventServer.event_id == event_id))
    for server_id in dict.fromkeys(server_ids):
        db.add(EventServer(event_id=event_id, server_id=server_id))


async def _replace_actions(db: AsyncSession, event_id: int, actions: list[ActionIn]) -> None:
    await db.execute(delete(EventAction).where(EventAction.event_id == event_id))
    for position, action in enumerate(actions):
        db.add(
            EventAction(
                event_id=event_id,
                position=position,
                on=action.on,
                condition=action.condition,
                type=action.type,
                target_event_id=action.event_id,
                credential_id=action.credential_id,
                action=action.action,
                params=action.params,
            )
        )


async def event_out(db: AsyncSession, event: Event) -> EventOut:
    return (await events_out(db, [event]))[0]


async def events_out(db: AsyncSession, events: Sequence[Event]) -> list[EventOut]:
    """The API shape of several events with two queries in all (servers, actions), not two
    per event: a list page of 50 events made 100 round trips."""
    ids = [e.id for e in events]
    server_ids: dict[int, list[int]] = {i: [] for i in ids}
    actions: dict[int, list[EventAction]] = {i: [] for i in ids}
    if ids:
        links = await db.execute(
            select(EventServer.event_id, EventServer.server_id)
            .where(EventServer.event_id.in_(ids))
            .order_by(EventServer.event_id, EventServer.server_id)
        )
        for event_id, server_id in links:
            server_ids[event_id].append(server_id)
        for action in await db.scalars(
            select(EventAction)
            .where(EventAction.event_id.in_(ids))
            .order_by(EventAction.event_id, EventAction.position)
        ):
            actions[action.event_id].append(action)
    return [_event_model(e, server_ids[e.id], actions[e.id]) for e in events]


def _event_model(event: Event, server_ids: list[int], actions: list[EventAction]) -> EventOut:
    return EventOut(
        id=event.id,
        owner_id=event.owner_id,
        name=event.name,
        description=event.description,
        type=event.type,
        language=event.language,
        content=event.content,
        http=event.http_spec,
        tool=event.tool_spec,
        status=event.status,
        schedule=schedule_dict(event),
        start_at=event.start_at,
        next_fire_at=event.next_fire_at,
        max_executions=event.max_executions,
        execution_count=event.execution_count,
        reset_counter_on_activate=event.reset_counter_on_activate,
        misfire_policy=event.misfire_policy,
        misfire_window_seconds=event.misfire_window_seconds,
        overlap_policy=event.overlap_policy,
        max_concurrent=event.max_concurrent,
        timeout_seconds=event.timeout_seconds,
        retries=event.retries,
        retry_backoff_seconds=event.retry_backoff_seconds,
        targets=Targets(local=event.run_local, server_ids=server_ids),
        env_keys=list(event.env_keys),
        input=event.input,
        image=event.image,
        resources=Resources(cpu=event.cpu, memory_mb=event.memory_mb, pids=event.pids),
        network=event.network,
        tags=list(event.tags),
        actions=[
            ActionOut(
                id=a.id,
                on=a.on,
                type=a.type,
                condition=a.condition,
                event_id=a.target_event_id,
                credential_id=a.credential_id,
                action=a.action,
                params=a.params,
            )
            for a in actions
        ],
        webhook=WebhookOut(
            enabled=event.webhook_enabled,
            key=event.webhook_key if event.webhook_enabled else None,
            has_secret=event.webhook_secret_encrypted is not None,
        ),
        created_at=event.created_at,
        updated_at=event.updated_at,
    )


async def stored_body(db: AsyncSession, event: Event) -> dict[str, Any]:
    """The stored event in the input shape (without write-only values), for PATCH merging."""
    out = await event_out(db, event)
    data = out.model_dump(mode="python")
    for key in (
        "id",
        "owner_id",
        "next_fire_at",
        "execution_count",
        "env_keys",
        "created_at",
        "updated_at",
    ):
        data.pop(key)
    data["actions"] = [
        {k: v for k, v in a.items() if k != "id" and v is not None and (k != "params" or v)}
        for a in data["actions"]
    ]
    data["webhook"] = {"enabled": event.webhook_enabled}
    data["resources"] = {k: v for k, v in data["resources"].items() if v is not None}
    for key in ("http", "tool"):
        if data[key] is None:
            data.pop(key)
    return data
