"""Webhooks: `POST /api/v1/webhooks/{key}` starts an event or a workflow from outside.

The random key is the credential. An optional secret makes every call sign
"<timestamp>.<raw body>" with HMAC-SHA256 (`X-Cronium-Timestamp`, `X-Cronium-Signature`);
a stale timestamp or a signature already accepted is refused, on any node (see
`cronium.security.webhook_signing`). Without a secret a call can be replayed by anyone who
saw it. Unknown and disabled keys look the same (404). Each key is rate limited, bodies
are capped, and the JSON body becomes the run's input.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from sqlalchemy import select
from starlette.requests import ClientDisconnect

from cronium.api.deps import CoreDep, DbDep
from cronium.core import Core
from cronium.db.models import Event, EventStatus, Trigger, Workflow
from cronium.engine import queue
from cronium.engine import workflows as workflow_engine
from cronium.engine.runner import concurrency_limit
from cronium.engine.scheduler import event_targets
from cronium.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ValidationFailed,
)
from cronium.security import webhook_signing
from cronium.security.webhook_signing import SignedCall

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookKey = Annotated[str, Path(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


class WebhookAccepted(BaseModel):
    kind: str  # event | workflow
    execution_id: int | None = None
    run_id: int | None = None


@router.post(
    "/{key}",
    response_model=WebhookAccepted,
    status_code=202,
    openapi_extra={"security": []},
)
async def trigger(key: WebhookKey, request: Request, core: CoreDep, db: DbDep) -> WebhookAccepted:
    """Start the event or workflow whose webhook key this is, with the JSON body as input."""
    limit = core.settings.webhook_rate_limit_per_min
    wait = await core.limiter.retry_after_s(f"webhook:{key}", limit=limit, window_s=60.0)
    if wait is not None:
        raise RateLimited(f"more than {limit} calls per minute to this webhook", retry_after_s=wait)
    await core.limiter.hit(f"webhook:{key}", window_s=60.0)
    target: Event | Workflow | None = await db.scalar(
        select(Event).where(Event.webhook_key == key, Event.webhook_enabled)
    )
    if target is None:
        target = await db.scalar(
            select(Workflow).where(Workflow.webhook_key == key, Workflow.webhook_enabled)
        )
    if target is None:
        raise NotFound("no enabled webhook has this key")
    raw = await _read(request, core.settings.webhook_max_body_bytes)
    signed = _verify(core, target, raw, request)
    body = _parse(raw)
    if target.status in (EventStatus.paused, EventStatus.archived):
        kind = "event" if isinstance(target, Event) else "workflow"
        raise Conflict(f"the {kind} is {target.status.value}: its webhook starts nothing")
    async with core.db.acquire() as conn, conn.transaction():
        # Recorded with the run it starts: a refused or failed start does not use it up.
        if signed is not None:
            await webhook_signing.remember(
                conn, key, signed, now_s=time.time(), tolerance_s=core.settings.webhook_tolerance_s
            )
        if isinstance(target, Workflow):
            run_id = await workflow_engine.start_run(
                conn,
                target.id,
                owner_id=target.owner_id,
                trigger=Trigger.webhook,
                input=body,
                triggered_by="webhook",
            )
            return WebhookAccepted(kind="workflow", run_id=run_id)
        execution_id = await queue.enqueue(
            conn,
            queue.NewExecution(
                event_id=target.id,
                owner_id=target.owner_id,
                trigger=Trigger.webhook,
                targets=await event_targets(conn, target.id, target.run_local),
                input=body,
                triggered_by="webhook",
                max_attempts=target.retries + 1,
                retry_backoff_s=target.retry_backoff_seconds,
                concurrency_limit=concurrency_limit(
                    target.overlap_policy.value, target.max_concurrent
                ),
            ),
        )
    return WebhookAccepted(kind="event", execution_id=execution_id)


async def _read(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    raw = b""
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_bytes:
                raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    except ClientDisconnect:
        raise ValidationFailed("client disconnected before sending the whole body") from None
    return raw


def _verify(
    core: Core, target: Event | Workflow, raw: bytes, request: Request
) -> SignedCall | None:
    """Without a secret there is nothing to check (and nothing stops a replay)."""
    if target.webhook_secret_encrypted is None:
        return None
    return webhook_signing.verify(
        core.cipher.decrypt_str(target.webhook_secret_encrypted),
        request.headers,
        raw,
        now_s=time.time(),
        tolerance_s=core.settings.webhook_tolerance_s,
    )


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed(f"body must be JSON: {exc}", details={"field": "body"}) from None
    if "\x00" in raw.decode("utf-8", "replace"):
        raise ValidationFailed("body must not contain NUL characters", details={"field": "body"})
    return value
