"""Send the tool actions that settled executions wrote to the outbox.

At most one sender holds a delivery (SKIP LOCKED, and a 'sending' state with a deadline
that recovery resets), failures retry with backoff honouring Retry-After, and the result
is recorded on the delivery and as a system line of the execution.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from cronium.core import Core
from cronium.engine.actions import system_line
from cronium.tools.base import ActionCall, ToolError
from cronium.tools.registry import runner
from cronium.tools.templates import render

log = logging.getLogger("cronium.deliveries")

MAX_ATTEMPTS = 5
BASE_BACKOFF_S = 2.0
SEND_TIMEOUT_S = 30.0
BATCH = 10

_CLAIM = """
WITH ready AS (
    SELECT id FROM action_deliveries
    WHERE (status = 'pending' AND next_attempt_at <= now())
       OR (status = 'sending' AND next_attempt_at <= now())  -- a sender died mid-send
    ORDER BY next_attempt_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT $1
)
UPDATE action_deliveries d
SET status = 'sending', attempts = d.attempts + 1,
    next_attempt_at = now() + make_interval(secs => $2)
FROM ready WHERE d.id = ready.id
RETURNING d.id, d.execution_id, d.action_id, d.attempts
"""


async def deliver_once(core: Core) -> tuple[int, float | None]:
    """Send what is due; returns (deliveries tried, seconds until the soonest retry)."""
    async with core.db.acquire() as conn:
        claimed = await conn.fetch(_CLAIM, BATCH, SEND_TIMEOUT_S * 2)
    retries = await asyncio.gather(*(_deliver(core, row) for row in claimed))
    waits = [w for w in retries if w is not None]
    return len(claimed), min(waits, default=None)


async def _deliver(core: Core, row: asyncpg.Record) -> float | None:
    async with core.db.acquire() as conn:
        context, call, tool = await _prepare(core, conn, row["execution_id"], row["action_id"])
    try:
        if call is None:
            raise ToolError(str(context.get("error")), permanent=True)
        result = await asyncio.wait_for(runner(tool)(call), timeout=SEND_TIMEOUT_S)
        await _finish(core, row, "sent", result.detail, None, f"{tool} action {call.action} sent")
        return None
    except (ToolError, TimeoutError) as exc:
        permanent = isinstance(exc, ToolError) and exc.permanent
        message = (
            exc.message if isinstance(exc, ToolError) else f"no answer within {SEND_TIMEOUT_S:g} s"
        )
        if permanent or row["attempts"] >= MAX_ATTEMPTS:
            await _finish(core, row, "failed", None, message, f"{tool} action failed: {message}")
            return None
        retry_after_s = getattr(exc, "retry_after_s", None)
        wait_s = (
            retry_after_s
            if retry_after_s is not None
            else BASE_BACKOFF_S * 2 ** (row["attempts"] - 1)
        )
        async with core.db.acquire() as conn:
            await conn.execute(
                """UPDATE action_deliveries SET status = 'pending', error = $2,
                          next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1""",
                row["id"],
                message,
                float(wait_s),
            )
        return float(wait_s)


async def _prepare(
    core: Core, conn: asyncpg.Connection, execution_id: int, action_id: int
) -> tuple[dict[str, Any], ActionCall | None, str]:
    action = await conn.fetchrow(
        """SELECT a.action, a.params, c.tool::text AS tool, c.config_encrypted
           FROM event_actions a LEFT JOIN tool_credentials c ON c.id = a.credential_id
           WHERE a.id = $1""",
        action_id,
    )
    if action is None or action["config_encrypted"] is None:
        return {"error": "the action's credential no longer exists"}, None, "tool"
    context = await template_context(conn, execution_id)
    tool = action["tool"]
    name = str(action["action"] or "")
    prefix, _, short = name.rpartition(".")
    if prefix and prefix != tool:
        return {"error": f"action {name!r} does not belong to a {tool} credential"}, None, tool
    params = render(action["params"] or {}, context)
    config = core.cipher.decrypt_json(action["config_encrypted"])
    return context, ActionCall(action=short or name, params=params, config=config), tool


async def template_context(conn: asyncpg.Connection, execution_id: int) -> dict[str, Any]:
    """What action templates may use: event, execution, output, input, variables."""
    row = await conn.fetchrow(
        """SELECT x.id, x.status::text AS status, x.trigger::text AS trigger, x.input, x.output,
                  x.condition, x.error, x.started_at, x.finished_at, x.owner_id,
                  e.id AS event_id, e.name AS event_name, e.tags
           FROM executions x JOIN events e ON e.id = x.event_id WHERE x.id = $1""",
        execution_id,
    )
    if row is None:
        return {}
    plain = await conn.fetch(
        "SELECT key, value FROM variables WHERE owner_id = $1 AND NOT secret", row["owner_id"]
    )
    return {
        "event": {"id": row["event_id"], "name": row["event_name"], "tags": list(row["tags"])},
        "execution": {
            "id": row["id"],
            "status": row["status"],
            "trigger": row["trigger"],
            "error": row["error"],
            "condition": row["condition"],
            "started_at": row["started_at"].isoformat() if row["started_at"] else None,
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        },
        "output": row["output"],
        "input": row["input"],
        "variables": {r["key"]: r["value"] for r in plain},
    }


async def _finish(
    core: Core, row: asyncpg.Record, status: str, result: Any, error: str | None, line: str
) -> None:
    async with core.db.acquire() as conn, conn.transaction():
        await conn.execute(
            """UPDATE action_deliveries
               SET status = $2, result = $3::jsonb, error = $4, finished_at = now()
               WHERE id = $1""",
            row["id"],
            status,
            result,
            error,
        )
        await system_line(conn, row["execution_id"], line)
    core.hub.publish(row["execution_id"])
    log.info("delivery %s %s", row["id"], status, extra={"action": "delivery"})


async def delivery_loop(
    core: Core, stop: asyncio.Event, wake: asyncio.Event, poll_s: float = 15.0
) -> None:
    next_retry_s: float | None = None
    while not stop.is_set():
        try:
            tried, retry_s = await deliver_once(core)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("delivery pass failed: %s", exc)
            tried, retry_s = 0, None
        if retry_s is not None:
            next_retry_s = retry_s if next_retry_s is None else min(next_retry_s, retry_s)
        if tried and retry_s is None:
            continue
        timeout_s = poll_s if next_retry_s is None else min(poll_s, next_retry_s)
        waiter = asyncio.ensure_future(wake.wait())
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait(
            {waiter, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        stopper.cancel()
        if not done:
            next_retry_s = None  # slept until the retry was due
        wake.clear()
