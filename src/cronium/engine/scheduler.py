"""The scheduler: one leader (a session advisory lock), exact sleeps, exactly-once fires.

Exactly-once does not depend on leadership: each due event is handled under its row lock
with a conditional re-check of `next_fire_at`, and each fire is a row keyed
(event, fire time), so even two leaders could not double-fire. Leadership only avoids
wasted work; a follower retries the lock every second, so failover takes about a second
after the leader's connection drops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from cronium.core import Core
from cronium.db.models import (
    EventStatus,
    FireOutcome,
    MisfirePolicy,
    OverlapPolicy,
    ScheduleKind,
    Trigger,
)
from cronium.db.session import asyncpg_dsn
from cronium.domain.firing import ScheduleState, plan
from cronium.engine import queue
from cronium.engine.runner import concurrency_limit

log = logging.getLogger("cronium.scheduler")

LEADER_LOCK_KEY = 7465303
FOLLOWER_RETRY_S = 1.0
# Schedule changes wake the leader by NOTIFY (and on every listener reconnect); the idle
# re-check only guards against the unexpected, so it can be rare.
MAX_IDLE_SLEEP_S = 30.0
DUE_BATCH = 200
# Server-side keepalives of the lock session: a vanished leader host is dropped (and the
# lock released) after about idle + interval * count = 3 s; a follower retries every
# second, so failover stays within 5 s even when the leader's host dies silently.
LOCK_KEEPALIVE_IDLE_S = 1
LOCK_KEEPALIVE_INTERVAL_S = 1
LOCK_KEEPALIVE_COUNT = 2


class Scheduler:
    def __init__(self, core: Core, clock: Callable[[], datetime] | None = None) -> None:
        self.core = core
        self.clock = clock or (lambda: datetime.now(UTC))
        self.wake = asyncio.Event()
        self.is_leader = False
        self.grace_s = core.settings.misfire_grace_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.connect_lock_connection()
                await self._lead_when_possible(conn, stop)
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,  # "connection is closed": the lock went with it
                TimeoutError,
                ConnectionError,
            ) as exc:
                log.warning("scheduler connection lost (%s); retrying", exc)
            finally:
                self.is_leader = False
                if conn is not None:
                    await _close_lock_connection(conn)
            await _sleep_or(stop, FOLLOWER_RETRY_S)

    async def connect_lock_connection(self) -> asyncpg.Connection:
        """The session that holds the leader lock, with aggressive server-side keepalives.

        The lock is released when PostgreSQL notices the session is gone. A process that
        exits closes its socket, but a host that crashes or drops off the network does not:
        without keepalives the server would hold the lock for the OS default (two hours).
        """
        return await asyncpg.connect(
            asyncpg_dsn(self._url()),
            timeout=10,
            server_settings={
                "application_name": f"cronium-scheduler {self.core.node_id}"[:63],
                "tcp_keepalives_idle": str(LOCK_KEEPALIVE_IDLE_S),
                "tcp_keepalives_interval": str(LOCK_KEEPALIVE_INTERVAL_S),
                "tcp_keepalives_count": str(LOCK_KEEPALIVE_COUNT),
            },
        )

    def _url(self) -> str:
        return self.core.engine.url.render_as_string(hide_password=False)

    async def _lead_when_possible(self, lock_conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY):
                self.is_leader = True
                log.info(
                    "scheduler leadership acquired by %s",
                    self.core.node_id,
                    extra={"action": "leader"},
                )
                await self._lead(lock_conn, stop)
                return
            await _sleep_or(stop, FOLLOWER_RETRY_S)

    async def _lead(self, lock_conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        # A dropped lock connection wakes the loop at once, so a former leader steps down
        # instead of ticking on until its next sleep ends.
        lock_conn.add_termination_listener(lambda _conn: self.wake.set())
        while not stop.is_set():
            if lock_conn.is_closed():
                raise ConnectionError("leader lock connection closed")
            soonest = await self.tick(self.clock())
            now = self.clock()
            sleep_s = MAX_IDLE_SLEEP_S if soonest is None else (soonest - now).total_seconds()
            sleep_s = min(max(sleep_s, 0.0), MAX_IDLE_SLEEP_S)
            if sleep_s > 0:
                await _sleep_or(stop, sleep_s, self.wake)
            self.wake.clear()

    async def tick(self, now: datetime) -> datetime | None:
        """Fire every event due at `now`; return the soonest next fire time (or None)."""
        async with self.core.db.acquire() as conn:
            due = await conn.fetch(
                """SELECT id FROM events WHERE status = 'active' AND next_fire_at <= $1
                   ORDER BY next_fire_at LIMIT $2""",
                now,
                DUE_BATCH,
            )
            for row in due:
                await self._fire_event(conn, row["id"], now)
            if len(due) == DUE_BATCH:
                return now  # more are due: go again at once
            soonest: datetime | None = await conn.fetchval(
                "SELECT min(next_fire_at) FROM events WHERE status = 'active'"
            )
            return soonest

    async def _fire_event(self, conn: asyncpg.Connection, event_id: int, now: datetime) -> None:
        async with conn.transaction():
            ev = await conn.fetchrow(
                """SELECT id, owner_id, schedule_kind::text AS kind, cron, timezone,
                          interval_seconds, run_at, start_at, next_fire_at,
                          misfire_policy::text AS misfire, misfire_window_seconds,
                          max_executions, execution_count, run_local,
                          overlap_policy::text AS overlap, max_concurrent, retries,
                          retry_backoff_seconds, input
                   FROM events
                   WHERE id = $1 AND status = 'active' AND next_fire_at <= $2
                   FOR UPDATE SKIP LOCKED""",
                event_id,
                now,
            )
            if ev is None:
                return  # another scheduler handled it, or it changed meanwhile
            state = ScheduleState(
                kind=ScheduleKind(ev["kind"]),
                cron=ev["cron"],
                timezone=ev["timezone"],
                interval_seconds=ev["interval_seconds"],
                run_at=ev["run_at"],
                start_at=ev["start_at"],
                next_fire_at=ev["next_fire_at"],
                misfire_policy=MisfirePolicy(ev["misfire"]),
                misfire_window_s=ev["misfire_window_seconds"],
                max_executions=ev["max_executions"],
                execution_count=ev["execution_count"],
                overlap_policy=OverlapPolicy(ev["overlap"]),
            )
            # Under the event's row lock: admission (queue.admit) takes the same lock.
            busy = state.overlap_policy is OverlapPolicy.skip and await _has_open_execution(
                conn, event_id
            )
            fire_plan = plan(state, now, self.grace_s, busy=busy)
            targets = await event_targets(conn, event_id, ev["run_local"])
            limit = concurrency_limit(ev["overlap"], ev["max_concurrent"])
            fired = 0
            for fire_time in fire_plan.run:
                execution_id = await queue.enqueue(
                    conn,
                    queue.NewExecution(
                        event_id=event_id,
                        owner_id=ev["owner_id"],
                        trigger=Trigger.schedule,
                        targets=targets,
                        input=ev["input"],
                        triggered_by="schedule",
                        scheduled_for=fire_time,
                        max_attempts=ev["retries"] + 1,
                        retry_backoff_s=ev["retry_backoff_seconds"],
                        concurrency_limit=limit,
                    ),
                )
                if execution_id is not None:
                    fired += 1
                    await _record(conn, event_id, [fire_time], FireOutcome.fired, now, execution_id)
            await _record(conn, event_id, fire_plan.skipped, FireOutcome.skipped, now)
            await _record(conn, event_id, fire_plan.missed, FireOutcome.missed, now)
            status = EventStatus.paused if fire_plan.exhausted else EventStatus.active
            await conn.execute(
                """UPDATE events SET next_fire_at = $2, execution_count = execution_count + $3,
                          status = $4::event_status
                   WHERE id = $1""",
                event_id,
                fire_plan.next_fire_at,
                fired,
                status.value,
            )
            if fire_plan.missed:
                log.info(
                    "event %s: %d fire(s) missed (policy %s)",
                    event_id,
                    len(fire_plan.missed),
                    ev["misfire"],
                    extra={"action": "misfire"},
                )


async def event_targets(
    conn: asyncpg.Connection, event_id: int, run_local: bool
) -> list[queue.Target]:
    targets = [queue.Target("local")] if run_local else []
    rows = await conn.fetch(
        """SELECT s.id, s.name FROM event_servers es JOIN servers s ON s.id = es.server_id
           WHERE es.event_id = $1 ORDER BY s.id""",
        event_id,
    )
    targets.extend(queue.Target(r["name"], r["id"]) for r in rows)
    return targets or [queue.Target("local")]


async def _has_open_execution(conn: asyncpg.Connection, event_id: int) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (
                   SELECT 1 FROM jobs
                   WHERE event_id = $1 AND status IN ('waiting', 'queued', 'running'))""",
            event_id,
        )
    )


async def _record(
    conn: asyncpg.Connection,
    event_id: int,
    fire_times: list[datetime],
    outcome: FireOutcome,
    now: datetime,
    execution_id: int | None = None,
) -> None:
    """One schedule_fires row per (event, fire time); the first writer wins."""
    if not fire_times:
        return
    await conn.executemany(
        """INSERT INTO schedule_fires (event_id, fire_time, outcome, execution_id, lag_ms)
           VALUES ($1, $2, $3::fire_outcome, $4, $5)
           ON CONFLICT (event_id, fire_time) DO NOTHING""",
        [
            (
                event_id,
                fire_time,
                outcome.value,
                execution_id,
                (now - fire_time).total_seconds() * 1000 if outcome is FireOutcome.fired else None,
            )
            for fire_time in fire_times
        ],
    )


async def _close_lock_connection(conn: asyncpg.Connection) -> None:
    """Close gracefully if possible; otherwise drop the socket, which frees the lock too."""
    if conn.is_closed():
        return
    try:
        await conn.close(timeout=2)
    except asyncio.CancelledError:
        conn.terminate()
        raise
    except Exception:  # any failure to close: abort the socket instead
        conn.terminate()


async def _sleep_or(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
