"""Send the tool actions that settled executions wrote to the outbox.

At most one sender holds a delivery (SKIP LOCKED, and a 'sending' state with a deadline
that recovery resets). Each claim makes one attempt through the shared tool path
(`cronium.tools.execute`); a retryable failure puts the delivery back with backoff that
honours Retry-After, up to MAX_ATTEMPTS. The outcome (attempts, result or error) is
recorded on the delivery row and as a system line of the execution.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from cronium.core import Core
from cronium.db.session import DB_UNAVAILABLE
from cronium.engine.actions import system_line
from cronium.tools.base import ToolError
from cronium.tools.execute import ActionRequest, Outcome, RetryPolicy, execute

log = logging.getLogger("cronium.deliveries")

MAX_ATTEMPTS = 5
BASE_BACKOFF_S = 2.0
SEND_TIMEOUT_S = 30.0
MAX_RETRY_AFTER_S = 3600.0  # a receiver asking for longer gets retried after an hour
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
    """One attempt per claim: the outbox, not the sender, holds retries (they survive restarts)."""
    async with core.db.acquire() as conn:
        action = await conn.fetchrow(
            """SELECT a.credential_id, a.action, a.params, e.owner_id
               FROM event_actions a JOIN events e ON e.id = a.event_id WHERE a.id = $1""",
            row["action_id"],
        )
    if action is None or action["credential_id"] is None:
        gone = ToolError("the action or its credential no longer exists", permanent=True)
        outcome = Outcome(False, None, "", None, 0, 0, error=gone)
    else:
        request = ActionRequest(
            owner_id=action["owner_id"],
            action=str(action["action"] or ""),
            params=dict(action["params"] or {}),
            credential_id=action["credential_id"],
            execution_id=row["execution_id"],
        )
        policy = RetryPolicy(
            max_attempts=1, budget_s=SEND_TIMEOUT_S, attempt_timeout_s=SEND_TIMEOUT_S
        )
        outcome = await execute(core.db, core.cipher, request, policy)
    name = f"{outcome.tool or 'tool'} action {outcome.action}".rstrip()
    if outcome.ok:
        await _finish(core, row, "sent", outcome.as_dict(), None, f"{name} sent")
        return None
    error = outcome.error
    assert error is not None
    if error.permanent or row["attempts"] >= MAX_ATTEMPTS:
        tries = f" after {row['attempts']} attempts" if row["attempts"] > 1 else ""
        line = f"{name} failed{tries}: {error.message}"
        await _finish(core, row, "failed", outcome.as_dict(), error.message, line)
        return None
    wait_s = (
        min(error.retry_after_s, MAX_RETRY_AFTER_S)
        if error.retry_after_s is not None
        else BASE_BACKOFF_S * 2 ** (row["attempts"] - 1)
    )
    async with core.db.acquire() as conn:
        await conn.execute(
            """UPDATE action_deliveries SET status = 'pending', error = $2, result = $4::jsonb,
                      next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1""",
            row["id"],
            error.message,
            float(wait_s),
            outcome.as_dict(),
        )
    return float(wait_s)


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
        except DB_UNAVAILABLE as exc:
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
