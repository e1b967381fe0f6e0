"""Retention: prune finished executions (their jobs and log lines go by cascade).

Two limits, each per event with a global default: keep at most `retention_count` finished
executions of an event (`CRONIUM_EXECUTION_RETENTION_COUNT`), and none that finished more
than `retention_days` ago (`CRONIUM_LOG_RETENTION_DAYS`). Unfinished executions (queued,
running) are never deleted and do not count towards the limit, so a backlog cannot push
an event's history out.

Deletion runs in bounded batches, each in its own short transaction, and a pass does at
most `max_batches` of them: one pass never holds locks long or deletes without end; what
is left goes in the next pass. An advisory lock keeps two nodes from pruning at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from cronium.core import Core
from cronium.db.session import DB_UNAVAILABLE

log = logging.getLogger("cronium.maintenance")

DEFAULT_INTERVAL_S = 300.0
BATCH_SIZE = 200
MAX_BATCHES_PER_PASS = 50
# pg_try_advisory_xact_lock key: "cronium retention" (any constant unique to Cronium).
_LOCK_KEY = 0x43524E52  # "CRNR"

_FINISHED = "('succeeded', 'failed', 'timed_out', 'cancelled', 'partial')"

# Finished executions of each event beyond its newest `keep` finished ones.
_OVER_COUNT = f"""
DELETE FROM executions WHERE id IN (
    SELECT old.id
    FROM events e
    CROSS JOIN LATERAL (
        SELECT x.id FROM executions x
        WHERE x.event_id = e.id AND x.status IN {_FINISHED}
        ORDER BY x.created_at DESC, x.id DESC
        OFFSET greatest(coalesce(e.retention_count, $1), 0)
    ) AS old
    LIMIT $2
) AND status IN {_FINISHED}
"""

# Finished executions older than their event's retention (by when they finished).
_OVER_AGE = f"""
DELETE FROM executions WHERE id IN (
    SELECT x.id
    FROM executions x JOIN events e ON e.id = x.event_id
    WHERE x.status IN {_FINISHED}
      AND coalesce(x.finished_at, x.created_at)
          < $1::timestamptz - make_interval(days => greatest(coalesce(e.retention_days, $2), 0))
    LIMIT $3
) AND status IN {_FINISHED}
"""


async def prune_once(
    core: Core,
    now: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES_PER_PASS,
) -> dict[str, int]:
    """One retention pass. Returns how many executions each limit deleted."""
    settings = core.settings
    deleted = {"by_count": 0, "by_age": 0}
    batches = 0
    for kind, sql, args in (
        ("by_age", _OVER_AGE, (now, settings.log_retention_days, batch_size)),
        ("by_count", _OVER_COUNT, (settings.execution_retention_count, batch_size)),
    ):
        while batches < max_batches:
            batches += 1
            async with core.db.acquire() as conn, conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
                    log.info("another node is pruning; skipping this pass")
                    return deleted
                status = await conn.execute(sql, *args)
            count = int(status.split()[-1])  # "DELETE <n>"
            deleted[kind] += count
            if count < batch_size:
                break
    return deleted


async def maintenance_loop(
    core: Core, stop: asyncio.Event, interval_s: float = DEFAULT_INTERVAL_S
) -> None:
    """Prune every `interval_s` until `stop` is set; a failed pass is retried next time."""
    while not stop.is_set():
        try:
            deleted = await prune_once(core, datetime.now(UTC))
        except DB_UNAVAILABLE as exc:
            log.warning("retention pass failed: %s", exc)
        else:
            if any(deleted.values()):
                log.info(
                    "retention: deleted %d executions over the count limit, %d over the age limit",
                    deleted["by_count"],
                    deleted["by_age"],
                    extra={"action": "retention_pruned"},
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
