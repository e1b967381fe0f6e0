"""The scheduler against a real PostgreSQL, mostly with a controllable clock.

Most tests call `Scheduler.tick(now)` directly with a chosen `now` instead of running the
loop, so fire times, lateness and contention are exact and no test waits on the wall
clock. Only leader failover and the every-second schedule run in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
import pytest

from cronium.config import Settings
from cronium.core import Core, open_core
from cronium.domain.schedules import next_fires
from cronium.engine.node import Node
from cronium.engine.scheduler import LEADER_LOCK_KEY, LOCKED_RETRY_S, Scheduler
from tests.conftest import Api, wait_for_status

FAILOVER_LIMIT_S = 5.0


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def tomorrow() -> datetime:
    """A whole minute a day ahead: the fake clock's origin, later than any real `now`."""
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)


async def create_event(
    api: Api, name: str, schedule: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "language": "bash",
        "content": "true",
        "status": "active",
        "schedule": schedule,
        **fields,
    }
    resp = await api.post("/events", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def every_minute() -> dict[str, Any]:
    return {"kind": "cron", "cron": "* * * * *"}


async def fetch(core: Core, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with core.db.acquire() as conn:
        return list(await conn.fetch(sql, *args))


async def fetchval(core: Core, sql: str, *args: Any) -> Any:
    async with core.db.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def set_next_fire(core: Core, event_id: int, at: datetime) -> None:
    async with core.db.acquire() as conn:
        await conn.execute("UPDATE events SET next_fire_at = $2 WHERE id = $1", event_id, at)


async def fires_of(core: Core, event_id: int) -> dict[str, list[datetime]]:
    rows = await fetch(
        core,
        "SELECT outcome::text AS outcome, fire_time FROM schedule_fires WHERE event_id = $1 "
        "ORDER BY fire_time",
        event_id,
    )
    out: dict[str, list[datetime]] = {"fired": [], "missed": [], "skipped": []}
    for row in rows:
        out[row["outcome"]].append(row["fire_time"])
    return out


async def scheduled_for(core: Core, event_id: int) -> list[datetime]:
    """The fire times of the event's scheduled executions (manual runs have none)."""
    rows = await fetch(
        core,
        """SELECT scheduled_for FROM executions
           WHERE event_id = $1 AND scheduled_for IS NOT NULL ORDER BY scheduled_for""",
        event_id,
    )
    return [r["scheduled_for"] for r in rows]


async def event_row(core: Core, event_id: int) -> asyncpg.Record:
    rows = await fetch(
        core,
        "SELECT status::text AS status, next_fire_at, execution_count FROM events WHERE id = $1",
        event_id,
    )
    return rows[0]


async def tick_until_idle(scheduler: Scheduler, now: datetime) -> None:
    """What the leader loop does: tick again while something is still due at `now`."""
    for _ in range(100):
        soonest = await scheduler.tick(now)
        if soonest is None or soonest > now:
            return
    raise AssertionError("the scheduler never caught up")


@pytest.fixture
async def second_core(settings: Settings) -> AsyncIterator[Core]:
    """Another process's view of the same database: its own pool and node id."""
    other = await open_core(settings, run_migrations=False)
    yield other
    await other.close()


# --- exactly once --------------------------------------------------------------------------

INTERVALS_S = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13)
CRONS = (
    ("*/2 * * * * *", "UTC"),
    ("*/3 * * * * *", "Europe/Berlin"),
    ("*/5 * * * * *", "UTC"),
    ("*/7 * * * * *", "America/New_York"),
    ("*/10 * * * * *", "UTC"),
    ("*/15 * * * * *", "Asia/Kolkata"),
    ("*/20 * * * * *", "UTC"),
    ("0,30 * * * * *", "UTC"),
    ("13,47 * * * * *", "Australia/Sydney"),
    ("* * * * *", "Europe/Berlin"),
)


def expected_fires(schedule: dict[str, Any], start: datetime, end: datetime) -> list[datetime]:
    """The series computed independently of the scheduler: every fire in [start, end]."""
    if schedule["kind"] == "interval":
        step = timedelta(seconds=schedule["every_seconds"])
        return [start + step * i for i in range(int((end - start) / step) + 1)]
    fires, after = [], start - timedelta(microseconds=1)
    while (after := next_fires(schedule["cron"], schedule["timezone"], after, count=1)[0]) <= end:
        fires.append(after)
    return fires


async def test_two_schedulers_on_two_cores_fire_every_fire_exactly_once(
    api: dict[str, Api], core: Core, second_core: Core
) -> None:
    start = tomorrow()
    end = start + timedelta(seconds=240)
    schedules = [{"kind": "interval", "every_seconds": s} for s in INTERVALS_S] + [
        {"kind": "cron", "cron": c, "timezone": z} for c, z in CRONS
    ]
    expected: dict[int, list[datetime]] = {}
    for index, schedule in enumerate(schedules):
        event = await create_event(
            api["user"],
            f"contended {index}",
            schedule,
            start_at=start.isoformat(),
            misfire_policy="run_all",
            misfire_window_seconds=3600,
        )
        expected[event["id"]] = expected_fires(schedule, start, end)
        assert datetime.fromisoformat(event["next_fire_at"]) == expected[event["id"]][0]
    total = sum(len(f) for f in expected.values())
    assert total > 700

    a, b = Scheduler(core), Scheduler(second_core)
    rng = random.Random(7465303)
    now = start - timedelta(seconds=1)
    while now < end:
        now = min(now + timedelta(seconds=rng.uniform(0.2, 4.0)), end)
        # Both see the same due events; their clocks differ by up to a second.
        skew = timedelta(seconds=rng.uniform(-1.0, 1.0))
        await asyncio.gather(a.tick(now), b.tick(min(now + skew, end)))
    await asyncio.gather(tick_until_idle(a, end), tick_until_idle(b, end))

    pairs = await fetch(core, "SELECT event_id, scheduled_for FROM executions")
    assert len(pairs) == total
    assert len({(r["event_id"], r["scheduled_for"]) for r in pairs}) == total
    for event_id, fires in expected.items():
        assert await scheduled_for(core, event_id) == fires, event_id
        row = await event_row(core, event_id)
        assert row["execution_count"] == len(fires)
        assert row["next_fire_at"] > end
    fire_rows = await fetch(
        core,
        """SELECT f.event_id, f.fire_time, f.outcome::text AS outcome, x.scheduled_for
           FROM schedule_fires f LEFT JOIN executions x ON x.id = f.execution_id""",
    )
    assert len(fire_rows) == total
    assert {r["outcome"] for r in fire_rows} == {"fired"}
    assert all(r["fire_time"] == r["scheduled_for"] for r in fire_rows)
    assert await fetchval(core, "SELECT count(*) FROM jobs") == total


async def test_a_scheduler_that_saw_an_event_due_does_not_fire_it_again_after_another_did(
    api: dict[str, Api], core: Core, second_core: Core
) -> None:
    # The losing interleaving, forced: B read the due list before A fired and committed.
    start = tomorrow()
    event = await create_event(api["user"], "raced", every_minute(), start_at=start.isoformat())
    a, b = Scheduler(core), Scheduler(second_core)
    await a.tick(start)
    async with second_core.db.acquire() as conn:
        await b._fire_event(conn, event["id"], start)
    assert await scheduled_for(core, event["id"]) == [start]
    assert (await event_row(core, event["id"]))["execution_count"] == 1


async def test_a_scheduler_skips_an_event_another_holds_and_nothing_is_lost(
    api: dict[str, Api], core: Core, second_core: Core
) -> None:
    start = tomorrow()
    event = await create_event(api["user"], "locked", every_minute(), start_at=start.isoformat())
    async with core.db.acquire() as holder, holder.transaction():
        # Another scheduler is in the middle of firing this event.
        await holder.execute("SELECT 1 FROM events WHERE id = $1 FOR UPDATE", event["id"])
        soonest = await Scheduler(second_core).tick(start)
        # Still due, but held: looked at again shortly, not in a tight loop.
        assert soonest is not None
        assert start < soonest <= start + timedelta(seconds=LOCKED_RETRY_S)
        assert await scheduled_for(core, event["id"]) == []
    await Scheduler(second_core).tick(start)
    assert await scheduled_for(core, event["id"]) == [start]


async def test_the_unique_key_refuses_a_second_execution_of_a_fire_already_made(
    api: dict[str, Api], core: Core
) -> None:
    start = tomorrow()
    event = await create_event(api["user"], "stale", every_minute(), start_at=start.isoformat())
    scheduler = Scheduler(core)
    await scheduler.tick(start)
    # A stale writer puts next_fire_at back: the (event, fire time) key still says no.
    await set_next_fire(core, event["id"], start)
    await scheduler.tick(start + timedelta(seconds=1))
    assert await scheduled_for(core, event["id"]) == [start]
    assert (await fires_of(core, event["id"]))["fired"] == [start]
    assert (await event_row(core, event["id"]))["execution_count"] == 1


# --- misfires ------------------------------------------------------------------------------


async def test_fires_missed_during_downtime_are_recorded_per_misfire_policy(
    api: dict[str, Api], core: Core
) -> None:
    down_from = tomorrow()
    back_at = down_from + timedelta(minutes=9, seconds=30)  # 12:00 ... 12:09 all late
    ten = [down_from + timedelta(minutes=i) for i in range(10)]
    ids = {}
    for policy in ("skip", "run_once", "run_all"):
        event = await create_event(
            api["user"],
            f"misfire {policy}",
            every_minute(),
            misfire_policy=policy,
            misfire_window_seconds=300,
        )
        await set_next_fire(core, event["id"], down_from)
        ids[policy] = event["id"]
    await Scheduler(core).tick(back_at)

    skip = await fires_of(core, ids["skip"])
    assert (skip["fired"], skip["missed"]) == ([], ten)
    run_once = await fires_of(core, ids["run_once"])
    assert (run_once["fired"], run_once["missed"]) == (ten[9:], ten[:9])
    run_all = await fires_of(core, ids["run_all"])
    assert (run_all["fired"], run_all["missed"]) == (ten[5:], ten[:5])  # 300 s window
    for policy, runs in (("skip", []), ("run_once", ten[9:]), ("run_all", ten[5:])):
        assert await scheduled_for(core, ids[policy]) == runs
        row = await event_row(core, ids[policy])
        assert (row["next_fire_at"], row["execution_count"]) == (
            ten[-1] + timedelta(minutes=1),
            len(runs),
        )
    lags = await fetch(core, "SELECT lag_ms FROM schedule_fires WHERE outcome = 'fired'")
    assert all(r["lag_ms"] >= 30_000 for r in lags)


async def test_a_long_backlog_is_recorded_whole_and_the_window_runs(
    api: dict[str, Api], core: Core
) -> None:
    # Every second, an hour of downtime: 3601 fires, more than one pass takes.
    now = tomorrow()
    event = await create_event(
        api["user"],
        "backlog",
        {"kind": "cron", "cron": "* * * * * *"},
        misfire_policy="run_all",
        misfire_window_seconds=60,
    )
    await set_next_fire(core, event["id"], now - timedelta(hours=1))
    await tick_until_idle(Scheduler(core), now)
    fires = await fires_of(core, event["id"])
    assert len(fires["fired"]) == 61  # 0-60 s late: 3 on time, 58 within the window
    assert fires["fired"][0] == now - timedelta(seconds=60)
    assert len(fires["missed"]) == 3601 - 61
    assert fires["missed"][0] == now - timedelta(hours=1)
    assert await scheduled_for(core, event["id"]) == fires["fired"]
    assert (await event_row(core, event["id"]))["next_fire_at"] == now + timedelta(seconds=1)


# --- overlap and concurrency ------------------------------------------------------------------


async def test_overlap_skip_records_the_fire_skipped_while_a_run_is_open(
    api: dict[str, Api], core: Core
) -> None:
    start = tomorrow()
    event = await create_event(
        api["user"], "no overlap", every_minute(), overlap_policy="skip", start_at=start.isoformat()
    )
    # A manual run is queued; no worker runs it.
    resp = await api["user"].post(f"/events/{event['id']}/run")
    assert resp.status_code == 202, resp.text
    manual_id = resp.json()["execution_id"]
    scheduler = Scheduler(core)
    await scheduler.tick(start + timedelta(seconds=1))
    fires = await fires_of(core, event["id"])
    assert (fires["fired"], fires["skipped"]) == ([], [start])
    assert await scheduled_for(core, event["id"]) == []
    row = await event_row(core, event["id"])
    assert (row["status"], row["execution_count"]) == ("active", 0)
    assert row["next_fire_at"] == start + timedelta(minutes=1)
    # Once the open run is over, the next fire runs.
    async with core.db.acquire() as conn:
        await conn.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE execution_id = $1",
            manual_id,
        )
    await scheduler.tick(start + timedelta(minutes=1))
    fires = await fires_of(core, event["id"])
    assert (fires["fired"], fires["skipped"]) == ([start + timedelta(minutes=1)], [start])


async def test_overlap_skip_does_not_use_up_max_executions(api: dict[str, Api], core: Core) -> None:
    start = tomorrow()
    event = await create_event(
        api["user"],
        "skip then run",
        every_minute(),
        overlap_policy="skip",
        max_executions=1,
        start_at=start.isoformat(),
    )
    resp = await api["user"].post(f"/events/{event['id']}/run")
    assert resp.status_code == 202
    await Scheduler(core).tick(start)
    row = await event_row(core, event["id"])
    assert (row["status"], row["execution_count"]) == ("active", 0)
    assert row["next_fire_at"] == start + timedelta(minutes=1)


@contextlib.asynccontextmanager
async def watching(core: Core, event_id: int) -> AsyncIterator[Counter[str]]:
    """Poll the event's jobs meanwhile; the counter holds the most seen at once per state."""
    most: Counter[str] = Counter()
    task = asyncio.create_task(watch_jobs(core, event_id, most))
    try:
        yield most
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await watch_jobs(core, event_id, most, once=True)


async def watch_jobs(core: Core, event_id: int, most: Counter[str], *, once: bool = False) -> None:
    while True:
        row = (
            await fetch(
                core,
                """SELECT count(*) FILTER (WHERE status = 'running') AS running,
                          count(*) FILTER (WHERE status IN ('queued', 'running')) AS admitted,
                          count(*) FILTER (WHERE status = 'waiting') AS waiting
                   FROM jobs WHERE event_id = $1""",
                event_id,
            )
        )[0]
        for key in ("running", "admitted", "waiting"):
            most[key] = max(most[key], row[key])
        if once:
            return
        await asyncio.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fields", "limit"),
    [({"overlap_policy": "queue"}, 1), ({"max_concurrent": 1}, 1), ({"max_concurrent": 2}, 2)],
    ids=["overlap-queue", "max-concurrent-1", "max-concurrent-2"],
)
async def test_max_concurrent_runs_hold_when_runs_are_triggered_at_once(
    api: dict[str, Api], core: Core, node: Node, fields: dict[str, Any], limit: int
) -> None:
    event = await create_event(
        api["user"], "one at a time", {"kind": "manual"}, content="sleep 1", **fields
    )
    started = time.monotonic()
    async with watching(core, event["id"]) as most:
        responses = await asyncio.gather(
            *(api["user"].post(f"/events/{event['id']}/run") for _ in range(4))
        )
        assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
        done = [await wait_for_status(api["user"], r.json()["execution_id"]) for r in responses]
    took = time.monotonic() - started
    assert [d["status"] for d in done] == ["succeeded"] * 4
    assert most["running"] == limit
    assert most["admitted"] == limit
    assert most["waiting"] >= 4 - limit - 1  # the others did wait their turn
    # An admitted run starts at once (NOTIFY), not at the workers' 5 s safety poll.
    rounds = 4 // limit
    assert took < rounds * 1.0 + 4.0, f"{rounds} rounds of 'sleep 1' took {took:.1f} s"


async def test_runs_of_a_limited_event_triggered_at_once_all_queue_without_deadlock(
    api: dict[str, Api], core: Core
) -> None:
    event = await create_event(api["user"], "crowded", {"kind": "manual"}, max_concurrent=1)
    responses = await asyncio.gather(
        *(api["user"].post(f"/events/{event['id']}/run") for _ in range(10))
    )
    assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses]
    rows = await fetch(
        core,
        "SELECT status::text AS status, count(*) AS n FROM jobs WHERE event_id = $1 GROUP BY 1",
        event["id"],
    )
    assert {r["status"]: r["n"] for r in rows} == {"queued": 1, "waiting": 9}


@pytest.mark.slow
async def test_overlap_queue_holds_for_scheduled_fires_that_come_faster_than_runs(
    api: dict[str, Api], core: Core, node: Node
) -> None:
    event = await create_event(
        api["user"],
        "queued fires",
        {"kind": "cron", "cron": "* * * * * *"},
        content="sleep 1.5",  # longer than the period: fires come faster than runs end
        overlap_policy="queue",
        max_executions=3,
    )
    async with watching(core, event["id"]) as most:
        deadline = time.monotonic() + 20
        while (await event_row(core, event["id"]))["status"] != "paused":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        ids = [
            r["id"]
            for r in await fetch(core, "SELECT id FROM executions WHERE event_id = $1", event["id"])
        ]
        done = [await wait_for_status(api["user"], i) for i in ids]
    assert len(done) == 3
    assert [d["status"] for d in done] == ["succeeded"] * 3
    assert most["running"] == 1
    assert most["waiting"] >= 1  # a fire came while the previous run was still going


# --- max executions, start time, one-off -------------------------------------------------------


async def test_the_event_stops_at_max_executions_and_reactivation_resets_the_counter(
    api: dict[str, Api], core: Core
) -> None:
    event = await create_event(
        api["user"],
        "three times",
        {"kind": "interval", "every_seconds": 60},
        max_executions=3,
        reset_counter_on_activate=True,
    )
    scheduler = Scheduler(core)
    for _ in range(3):
        now = (await event_row(core, event["id"]))["next_fire_at"]
        await scheduler.tick(now)
    row = await event_row(core, event["id"])
    assert (row["status"], row["next_fire_at"], row["execution_count"]) == ("paused", None, 3)
    fired = await scheduled_for(core, event["id"])
    assert len(fired) == 3
    await scheduler.tick(fired[-1] + timedelta(days=1))
    assert len(await scheduled_for(core, event["id"])) == 3

    resp = await api["user"].post(f"/events/{event['id']}/activate")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["status"], body["execution_count"]) == ("active", 0)
    again = datetime.fromisoformat(body["next_fire_at"])
    await scheduler.tick(again)
    row = await event_row(core, event["id"])
    assert (row["status"], row["execution_count"]) == ("active", 1)
    assert again in await scheduled_for(core, event["id"])
    assert len(await scheduled_for(core, event["id"])) == 4


async def test_without_reset_a_reactivated_exhausted_event_stays_exhausted(
    api: dict[str, Api], core: Core
) -> None:
    event = await create_event(
        api["user"], "once only", {"kind": "interval", "every_seconds": 60}, max_executions=1
    )
    scheduler = Scheduler(core)
    await scheduler.tick((await event_row(core, event["id"]))["next_fire_at"])
    assert (await event_row(core, event["id"]))["status"] == "paused"
    body = (await api["user"].post(f"/events/{event['id']}/activate")).json()
    assert (body["execution_count"], body["next_fire_at"]) == (1, None)
    await scheduler.tick(datetime.now(UTC) + timedelta(days=1))
    assert len(await scheduled_for(core, event["id"])) == 1


async def test_a_start_time_in_the_future_delays_the_first_fire(
    api: dict[str, Api], core: Core
) -> None:
    start = tomorrow() + timedelta(seconds=30)  # hh:mm:30
    cron = await create_event(api["user"], "cron later", every_minute(), start_at=start.isoformat())
    interval = await create_event(
        api["user"],
        "interval later",
        {"kind": "interval", "every_seconds": 45},
        start_at=start.isoformat(),
    )
    first_cron = start + timedelta(seconds=30)  # the first whole minute after the start
    assert datetime.fromisoformat(cron["next_fire_at"]) == first_cron
    assert datetime.fromisoformat(interval["next_fire_at"]) == start
    scheduler = Scheduler(core)
    await scheduler.tick(start - timedelta(seconds=1))
    assert await fetchval(core, "SELECT count(*) FROM executions") == 0
    await scheduler.tick(start)
    assert await scheduled_for(core, interval["id"]) == [start]
    assert await scheduled_for(core, cron["id"]) == []
    await scheduler.tick(first_cron)
    assert await scheduled_for(core, cron["id"]) == [first_cron]
    assert await scheduled_for(core, interval["id"]) == [start]  # next at start + 45 s


async def test_a_one_off_fires_exactly_once(api: dict[str, Api], core: Core) -> None:
    at = tomorrow()
    event = await create_event(api["user"], "one-off", {"kind": "once", "at": at.isoformat()})
    assert datetime.fromisoformat(event["next_fire_at"]) == at
    scheduler = Scheduler(core)
    await scheduler.tick(at - timedelta(seconds=1))
    assert await scheduled_for(core, event["id"]) == []
    for later in (at, at + timedelta(seconds=1), at + timedelta(days=1)):
        await scheduler.tick(later)
    assert await scheduled_for(core, event["id"]) == [at]
    assert (await fires_of(core, event["id"]))["fired"] == [at]
    row = await event_row(core, event["id"])
    assert (row["next_fire_at"], row["status"]) == (None, "paused")  # done: no longer active


async def test_a_one_off_missed_during_downtime_stops_too(api: dict[str, Api], core: Core) -> None:
    at = tomorrow()
    event = await create_event(
        api["user"], "one-off", {"kind": "once", "at": at.isoformat()}, misfire_policy="skip"
    )
    await Scheduler(core).tick(at + timedelta(hours=1))
    assert await fires_of(core, event["id"]) == {"fired": [], "missed": [at], "skipped": []}
    row = await event_row(core, event["id"])
    assert (row["next_fire_at"], row["status"]) == (None, "paused")


# --- many events, bad events ---------------------------------------------------------------


async def test_a_tick_fires_every_event_due_with_its_targets_and_records(
    api: dict[str, Api], core: Core
) -> None:
    start = tomorrow()
    ids = [
        (await create_event(api["user"], f"many {i}", every_minute(), start_at=start.isoformat()))[
            "id"
        ]
        for i in range(30)
    ]
    soonest = await Scheduler(core).tick(start + timedelta(milliseconds=5))
    assert soonest == start + timedelta(minutes=1)
    for event_id in ids:
        assert await scheduled_for(core, event_id) == [start]
        assert await fires_of(core, event_id) == {"fired": [start], "missed": [], "skipped": []}
        row = await event_row(core, event_id)
        assert (row["execution_count"], row["next_fire_at"]) == (1, start + timedelta(minutes=1))
    jobs = await fetch(core, "SELECT target, status::text AS status, max_attempts FROM jobs")
    assert [tuple(r) for r in jobs] == [("local", "queued", 1)] * len(ids)


async def test_an_event_whose_next_fire_cannot_be_computed_is_paused_and_the_others_fire(
    api: dict[str, Api], core: Core
) -> None:
    start = tomorrow()
    good = await create_event(api["user"], "good", every_minute(), start_at=start.isoformat())
    bad = await create_event(api["user"], "bad", every_minute(), start_at=start.isoformat())
    # Stored before validation existed, or edited by hand: croniter refuses it.
    await fetch(core, "UPDATE events SET cron = '61 * * * *' WHERE id = $1", bad["id"])
    soonest = await Scheduler(core).tick(start)
    assert await scheduled_for(core, good["id"]) == [start]
    assert await scheduled_for(core, bad["id"]) == []
    row = await event_row(core, bad["id"])
    assert (row["status"], row["next_fire_at"]) == ("paused", None)
    assert soonest == start + timedelta(minutes=1)  # the bad event no longer counts
    audit = await fetch(
        core,
        "SELECT target_id, details FROM audit_log WHERE action = 'event.schedule_failed'",
    )
    assert [r["target_id"] for r in audit] == [str(bad["id"])]
    assert "61" in str(audit[0]["details"])


async def test_an_event_the_database_refuses_to_fire_is_paused_and_the_others_fire(
    api: dict[str, Api], core: Core
) -> None:
    start = tomorrow()
    good = await create_event(api["user"], "good", every_minute(), start_at=start.isoformat())
    bad = await create_event(api["user"], "bad", every_minute(), start_at=start.isoformat())
    # A run of this event cannot be stored (the trigger stands in for any such fault).
    async with core.db.acquire() as conn:
        await conn.execute(
            f"""CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF NEW.event_id = {bad["id"]} THEN RAISE EXCEPTION 'refused'; END IF;
                  RETURN NEW;
                END $$;
                CREATE TRIGGER refuse_bad BEFORE INSERT ON executions
                FOR EACH ROW EXECUTE FUNCTION refuse_bad();"""
        )
    soonest = await Scheduler(core).tick(start)
    assert await scheduled_for(core, good["id"]) == [start]
    assert (await event_row(core, good["id"]))["execution_count"] == 1
    assert await scheduled_for(core, bad["id"]) == []
    assert (await event_row(core, bad["id"]))["status"] == "paused"
    assert soonest == start + timedelta(minutes=1)


# --- leadership -----------------------------------------------------------------------------------


async def wait_until(predicate: Any, timeout_s: float) -> float:
    """Seconds until predicate() holds; fails after timeout_s."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


# pg_locks lists the whole cluster: other tests' schedulers hold the same key elsewhere.
THIS_LOCK = """l.locktype = 'advisory' AND l.objid = $1 AND l.granted
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


async def lock_holder(core: Core) -> str | None:
    """The application_name of the session holding the leader lock."""
    value: str | None = await fetchval(
        core,
        f"""SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE {THIS_LOCK}""",
        LEADER_LOCK_KEY,
    )
    return value


class Running:
    def __init__(self, core: Core) -> None:
        self.scheduler = Scheduler(core)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.scheduler.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        if not self.task.done():
            await asyncio.wait_for(self.task, timeout=10)


@pytest.fixture
async def two_schedulers(core: Core, second_core: Core) -> AsyncIterator[tuple[Running, Running]]:
    pair = (Running(core), Running(second_core))
    await wait_until(lambda: pair[0].scheduler.is_leader or pair[1].scheduler.is_leader, 5)
    yield pair
    for running in pair:
        await running.close()


def leader_first(pair: tuple[Running, Running]) -> tuple[Running, Running]:
    leader, follower = pair if pair[0].scheduler.is_leader else pair[::-1]
    assert not follower.scheduler.is_leader
    return leader, follower


@pytest.mark.slow
async def test_when_the_leader_stops_the_follower_leads_within_five_seconds(
    core: Core, two_schedulers: tuple[Running, Running]
) -> None:
    leader, follower = leader_first(two_schedulers)
    await asyncio.sleep(1.5)  # the follower has retried at least once and stays a follower
    assert not follower.scheduler.is_leader
    assert await lock_holder(core) == f"cronium-scheduler {leader.scheduler.core.node_id}"
    leader.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader.task
    took = await wait_until(lambda: follower.scheduler.is_leader, FAILOVER_LIMIT_S)
    print(f"failover after the leader stopped: {took:.2f} s")
    assert took <= FAILOVER_LIMIT_S
    assert await lock_holder(core) == f"cronium-scheduler {follower.scheduler.core.node_id}"


@pytest.mark.slow
async def test_when_the_leaders_connection_dies_the_follower_leads_within_five_seconds(
    core: Core, two_schedulers: tuple[Running, Running]
) -> None:
    leader, follower = leader_first(two_schedulers)
    pid = await fetchval(
        core,
        f"SELECT l.pid FROM pg_locks l WHERE {THIS_LOCK}",
        LEADER_LOCK_KEY,
    )
    assert await fetchval(core, "SELECT pg_terminate_backend($1)", pid)
    took = await wait_until(lambda: follower.scheduler.is_leader, FAILOVER_LIMIT_S)
    print(f"failover after the leader's connection died: {took:.2f} s")
    assert took <= FAILOVER_LIMIT_S
    # The former leader noticed at once, survived, and is now a follower.
    await wait_until(lambda: not leader.scheduler.is_leader, 1)
    assert not leader.task.done()
    await asyncio.sleep(1.5)
    assert not leader.scheduler.is_leader and follower.scheduler.is_leader
    assert await lock_holder(core) == f"cronium-scheduler {follower.scheduler.core.node_id}"


async def test_the_lock_session_asks_the_server_to_drop_it_fast_when_the_host_vanishes(
    core: Core,
) -> None:
    conn = await Scheduler(core).connect_lock_connection()
    try:
        idle = int(await conn.fetchval("SHOW tcp_keepalives_idle"))
        interval = int(await conn.fetchval("SHOW tcp_keepalives_interval"))
        count = int(await conn.fetchval("SHOW tcp_keepalives_count"))
    finally:
        await conn.close()
    if idle == 0:
        pytest.skip("PostgreSQL reached over a Unix socket: no TCP keepalives")
    assert (idle, interval, count) == (1, 1, 2)
    # Dead peer detected by the server, plus one follower retry (1 s), within the limit.
    assert idle + interval * count + 1 <= FAILOVER_LIMIT_S


# --- real time --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_an_every_second_cron_runs_every_second_in_real_time(
    api: dict[str, Api], core: Core, node: Node
) -> None:
    event = await create_event(
        api["user"], "every second", {"kind": "cron", "cron": "*/1 * * * * *"}, content="echo tick"
    )
    await asyncio.sleep(4.2)
    await api["user"].post(f"/events/{event['id']}/pause")
    fired = await scheduled_for(core, event["id"])
    assert len(fired) >= 3, fired
    assert all(f.microsecond == 0 for f in fired)
    assert all(b - a == timedelta(seconds=1) for a, b in pairwise(fired))
    ids = [
        r["id"]
        for r in await fetch(core, "SELECT id FROM executions WHERE event_id = $1", event["id"])
    ]
    for execution_id in ids:
        assert (await wait_for_status(api["user"], execution_id))["status"] == "succeeded"
    lags = await fetch(core, "SELECT lag_ms FROM schedule_fires WHERE event_id = $1", event["id"])
    assert max(r["lag_ms"] for r in lags) < 1000
