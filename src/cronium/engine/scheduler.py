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
from datetime import UTC, datetime, timedelta

import asyncpg

from cronium import metrics
from cronium.core import Core
from cronium.db.models import (
    EventStatus,
    FireOutcome,
    MisfirePolicy,
    OverlapPolicy,
    ScheduleKind,
    Trigger,
)
from cronium.db.session import DB_UNAVAILABLE, asyncpg_dsn
from cronium.domain.firing import FirePlan, ScheduleState, plan
from cronium.engine import queue
from cronium.engine.runner import concurrency_limit
from cronium.engine.sql import q
from cronium.engine.workflow_scheduler import fire_due_workflows, next_workflow_fire

log = logging.getLogger("cronium.scheduler")

LEADER_LOCK_KEY = 7465303
FOLLOWER_RETRY_S = 1.0
# Schedule changes wake the leader by NOTIFY (and on every listener reconnect); the idle
# re-check only guards against the unexpected, so it can be rare.
MAX_IDLE_SLEEP_S = 30.0
DUE_BATCH = 200
# A due event locked by another transaction (an edit, another scheduler) is looked at
# again after this long instead of at once.
LOCKED_RETRY_S = 0.1
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
            except DB_UNAVAILABLE as exc:  # "connection is closed": the lock went with it
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
        """Fire every event due at `now`; return when to tick next (None: nothing scheduled).

        All due events fire in one transaction with a few set-based statements. If that
        transaction fails, each event is retried in its own, so one bad event cannot hold
        the others back. An event that is due but locked by another transaction is retried
        after LOCKED_RETRY_S rather than in a tight loop.
        """
        async with self.core.db.acquire() as conn:
            try:
                async with conn.transaction():
                    more_due = await self._fire_due(conn, now)
            except asyncpg.PostgresError as exc:
                log.warning(
                    "firing the due events together failed (%s); firing them one by one",
                    exc,
                    extra={"action": "fire_batch_failed"},
                )
                more_due = await self._fire_each(conn, now)
            try:
                async with conn.transaction():
                    more_due |= await fire_due_workflows(conn, now, self.grace_s)
            except asyncpg.PostgresError as exc:
                log.warning("firing the due workflows failed (%s)", exc)
            soonest: datetime | None = await conn.fetchval(
                "SELECT min(next_fire_at) FROM events WHERE status = 'active'"
            )
            workflow_soonest = await next_workflow_fire(conn)
            if workflow_soonest is not None and (soonest is None or workflow_soonest < soonest):
                soonest = workflow_soonest
        if more_due:
            return now
        if soonest is not None and soonest <= now:
            return now + timedelta(seconds=LOCKED_RETRY_S)  # due, but held by someone else
        return soonest

    async def _fire_event(self, conn: asyncpg.Connection, event_id: int, now: datetime) -> None:
        """Fire one event if it is still due (and not locked elsewhere), in its own transaction."""
        async with conn.transaction():
            await self._fire_due(conn, now, only=event_id)

    async def _fire_each(self, conn: asyncpg.Connection, now: datetime) -> bool:
        ids = await conn.fetch(
            """SELECT id FROM events WHERE status = 'active' AND next_fire_at <= $1
               ORDER BY next_fire_at LIMIT $2""",
            now,
            DUE_BATCH,
        )
        for row in ids:
            try:
                await self._fire_event(conn, row["id"], now)
            except asyncpg.TransactionRollbackError as exc:  # deadlock, serialization: retry
                log.warning("event %s: firing deferred (%s)", row["id"], exc)
            except asyncpg.PostgresError as exc:
                await _pause_unschedulable(conn, {row["id"]: f"firing failed: {exc}"})
        return len(ids) == DUE_BATCH

    async def _fire_due(
        self, conn: asyncpg.Connection, now: datetime, only: int | None = None
    ) -> bool:
        """Fire the due events in the caller's transaction; True if more are due already."""
        due = await conn.fetch(q("due_events"), now, DUE_BATCH, only)
        plans: list[tuple[asyncpg.Record, FirePlan]] = []
        broken: dict[int, str] = {}
        for ev in due:
            try:
                plans.append((ev, plan(_state(ev), now, self.grace_s, busy=ev["busy"])))
            except Exception as exc:  # a schedule that cannot be computed stops only its event
                broken[ev["id"]] = f"cannot compute the schedule: {exc}"
        created = await queue.enqueue_fires(
            conn, [_new_execution(ev, fire) for ev, fire_plan in plans for fire in fire_plan.run]
        )
        fires: list[tuple[int, datetime, FireOutcome, int | None]] = []
        advance: list[tuple[int, datetime | None, int, str]] = []
        for ev, fire_plan in plans:
            fired = [(t, created[(ev["id"], t)]) for t in fire_plan.run if (ev["id"], t) in created]
            fires += [(ev["id"], t, FireOutcome.fired, x) for t, x in fired]
            fires += [(ev["id"], t, FireOutcome.skipped, None) for t in fire_plan.skipped]
            fires += [(ev["id"], t, FireOutcome.missed, None) for t in fire_plan.missed]
            status = EventStatus.paused if fire_plan.stops else EventStatus.active
            advance.append((ev["id"], fire_plan.next_fire_at, len(fired), status.value))
            if fire_plan.missed:
                log.info(
                    "event %s: %d fire(s) missed (policy %s)",
                    ev["id"],
                    len(fire_plan.missed),
                    ev["misfire"],
                    extra={"action": "misfire"},
                )
        await _record(conn, fires, now)
        if advance:
            await conn.execute(q("advance_events"), *map(list, zip(*advance, strict=True)))
        if broken:
            await _pause_unschedulable(conn, broken)
        return len(due) == DUE_BATCH or any(
            p.next_fire_at is not None and p.next_fire_at <= now for _ev, p in plans
        )


def _state(ev: asyncpg.Record) -> ScheduleState:
    return ScheduleState(
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


def _new_execution(ev: asyncpg.Record, fire_time: datetime) -> queue.NewExecution:
    servers = [
        queue.Target(n, i) for i, n in zip(ev["server_ids"], ev["server_names"], strict=True)
    ]
    targets = [queue.Target("local")] if ev["run_local"] else []
    return queue.NewExecution(
        event_id=ev["id"],
        owner_id=ev["owner_id"],
        trigger=Trigger.schedule,
        targets=[*targets, *servers] or [queue.Target("local")],
        input=ev["input"],
        triggered_by="schedule",
        scheduled_for=fire_time,
        max_attempts=ev["retries"] + 1,
        retry_backoff_s=ev["retry_backoff_seconds"],
        concurrency_limit=concurrency_limit(ev["overlap"], ev["max_concurrent"]),
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


async def _record(
    conn: asyncpg.Connection,
    fires: list[tuple[int, datetime, FireOutcome, int | None]],
    now: datetime,
) -> None:
    """One schedule_fires row per (event, fire time); the first writer wins."""
    if not fires:
        return
    await conn.execute(
        q("record_fires"),
        [event_id for event_id, _t, _o, _x in fires],
        [fire_time for _e, fire_time, _o, _x in fires],
        [outcome.value for _e, _t, outcome, _x in fires],
        [execution_id for _e, _t, _o, execution_id in fires],
        [
            (now - fire_time).total_seconds() * 1000 if outcome is FireOutcome.fired else None
            for _e, fire_time, outcome, _x in fires
        ],
    )
    for _e, fire_time, outcome, _x in fires:
        if outcome is FireOutcome.fired:
            metrics.SCHEDULE_LAG.observe(max((now - fire_time).total_seconds(), 0.0))


async def _pause_unschedulable(conn: asyncpg.Connection, reasons: dict[int, str]) -> None:
    """Stop events that cannot be fired, saying why (log and audit log); the rest go on."""
    for event_id, reason in reasons.items():
        log.error("event %s paused: %s", event_id, reason, extra={"action": "schedule_failed"})
    await conn.execute(q("pause_unschedulable"), list(reasons), list(reasons.values()))


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
