"""Retention: the maintenance pass prunes by count and by age, never unfinished runs."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import asyncpg

from cronium.core import Core
from cronium.engine.maintenance import maintenance_loop, prune_once
from tests.conftest import Api

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


async def create_event(api: Api, name: str = "e") -> int:
    resp = await api.post("/events", json={"name": name, "language": "bash", "content": "echo hi"})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def add_execution(
    conn: asyncpg.Connection, event_id: int, status: str, created: datetime, *, lines: int = 2
) -> int:
    """An execution with one job and a few log lines, `created` at that time."""
    finished = created + timedelta(minutes=1) if status not in ("queued", "running") else None
    started = None if status == "queued" else created
    owner = await conn.fetchval("SELECT owner_id FROM events WHERE id = $1", event_id)
    execution_id = int(
        await conn.fetchval(
            """INSERT INTO executions (event_id, owner_id, status, trigger, created_at, started_at,
                                       finished_at, log_seq)
               VALUES ($1, $2, $3::execution_status, 'manual', $4, $5, $6, $7) RETURNING id""",
            event_id,
            owner,
            status,
            created,
            started,
            finished,
            lines,
        )
    )
    job_status = status if status in ("queued", "running") else "succeeded"
    job_id = await conn.fetchval(
        """INSERT INTO jobs (execution_id, event_id, target, status, created_at)
           VALUES ($1, $2, 'local', $3::job_status, $4) RETURNING id""",
        execution_id,
        event_id,
        job_status,
        created,
    )
    await conn.executemany(
        """INSERT INTO log_lines (execution_id, job_id, seq, stream, target, ts, line)
           VALUES ($1, $2, $3, 'stdout', 'local', $4, 'x')""",
        [(execution_id, job_id, seq, created) for seq in range(1, lines + 1)],
    )
    return execution_id


async def count(conn: asyncpg.Connection, table: str, execution_ids: list[int]) -> int:
    sql = f"SELECT count(*) FROM {table} WHERE execution_id = ANY($1)"
    return int(await conn.fetchval(sql, execution_ids))


async def remaining(conn: asyncpg.Connection, event_id: int) -> set[int]:
    rows = await conn.fetch("SELECT id FROM executions WHERE event_id = $1", event_id)
    return {r["id"] for r in rows}


async def test_count_limit_keeps_the_newest_finished_and_every_unfinished_run(
    core: Core, api: dict[str, Api]
) -> None:
    event_id = await create_event(api["user"])
    async with core.db.acquire() as conn:
        await conn.execute("UPDATE events SET retention_count = 3 WHERE id = $1", event_id)
        finished = [
            await add_execution(conn, event_id, status, NOW - timedelta(hours=10 - i))
            for i, status in enumerate(
                ["succeeded", "failed", "timed_out", "cancelled", "partial", "succeeded", "failed"]
            )
        ]
        # Older than every finished run, and more of them than the limit: all survive.
        unfinished = [
            await add_execution(conn, event_id, "running", NOW - timedelta(days=2)),
            await add_execution(conn, event_id, "queued", NOW - timedelta(days=2, hours=1)),
            await add_execution(conn, event_id, "running", NOW - timedelta(hours=1)),
            await add_execution(conn, event_id, "queued", NOW - timedelta(minutes=1)),
        ]
        other_event = await create_event(api["user"], "other")
        untouched = [
            await add_execution(conn, other_event, "succeeded", NOW - timedelta(hours=h))
            for h in (1, 2)
        ]

    deleted = await prune_once(core, NOW)

    assert deleted == {"by_count": 4, "by_age": 0}
    async with core.db.acquire() as conn:
        assert await remaining(conn, event_id) == set(finished[-3:]) | set(unfinished)
        assert await remaining(conn, other_event) == set(untouched)
        # Jobs and log lines of the pruned executions went with them (cascade).
        gone = finished[:4]
        assert await count(conn, "log_lines", gone) == 0
        assert await count(conn, "jobs", gone) == 0
        assert await count(conn, "log_lines", finished[-3:]) == 6
    # A second pass finds nothing more to do.
    assert await prune_once(core, NOW) == {"by_count": 0, "by_age": 0}


async def test_global_count_limit_applies_when_the_event_sets_none(
    core: Core, api: dict[str, Api]
) -> None:
    settings = core.settings.model_copy(update={"execution_retention_count": 2})
    small = dataclasses.replace(core, settings=settings)
    event_id = await create_event(api["user"])
    async with core.db.acquire() as conn:
        runs = [
            await add_execution(conn, event_id, "succeeded", NOW - timedelta(minutes=m))
            for m in (5, 4, 3, 2, 1)
        ]
    assert await prune_once(small, NOW) == {"by_count": 3, "by_age": 0}
    async with core.db.acquire() as conn:
        assert await remaining(conn, event_id) == set(runs[-2:])


async def test_age_limit_per_event_and_global_never_touches_unfinished_runs(
    core: Core, api: dict[str, Api]
) -> None:
    assert core.settings.log_retention_days == 30  # CRONIUM_LOG_RETENTION_DAYS default
    week = await create_event(api["user"], "weekly")
    default = await create_event(api["user"], "default")
    async with core.db.acquire() as conn:
        await conn.execute("UPDATE events SET retention_days = 7 WHERE id = $1", week)
        week_old = await add_execution(conn, week, "failed", NOW - timedelta(days=10))
        week_new = await add_execution(conn, week, "succeeded", NOW - timedelta(days=3))
        week_running = await add_execution(conn, week, "running", NOW - timedelta(days=60))
        week_queued = await add_execution(conn, week, "queued", NOW - timedelta(days=60))
        default_old = await add_execution(conn, default, "succeeded", NOW - timedelta(days=40))
        default_new = await add_execution(conn, default, "succeeded", NOW - timedelta(days=20))

    deleted = await prune_once(core, NOW)

    assert deleted == {"by_count": 0, "by_age": 2}
    async with core.db.acquire() as conn:
        assert await remaining(conn, week) == {week_new, week_running, week_queued}
        assert await remaining(conn, default) == {default_new}
        assert await count(conn, "log_lines", [week_old, default_old]) == 0
        # The running one still has its job and log lines.
        assert await count(conn, "jobs", [week_running]) == 1
        assert await count(conn, "log_lines", [week_running]) == 2


async def test_a_pass_deletes_in_bounded_batches_and_the_next_pass_continues(
    core: Core, api: dict[str, Api]
) -> None:
    event_id = await create_event(api["user"])
    async with core.db.acquire() as conn:
        await conn.execute("UPDATE events SET retention_count = 1 WHERE id = $1", event_id)
        for minute in range(7, 0, -1):
            await add_execution(conn, event_id, "succeeded", NOW - timedelta(minutes=minute))
    # 6 over the limit; at most 2 per batch and 2 batches (statements) per pass.
    first = await prune_once(core, NOW, batch_size=2, max_batches=2)
    assert 0 < first["by_count"] <= 4
    async with core.db.acquire() as conn:
        assert len(await remaining(conn, event_id)) == 7 - first["by_count"]
    total = first["by_count"]
    for _ in range(5):
        total += (await prune_once(core, NOW, batch_size=2, max_batches=2))["by_count"]
    assert total == 6
    async with core.db.acquire() as conn:
        assert len(await remaining(conn, event_id)) == 1


async def test_the_maintenance_loop_prunes_until_stopped(core: Core, api: dict[str, Api]) -> None:
    event_id = await create_event(api["user"])
    now = datetime.now(UTC)
    async with core.db.acquire() as conn:
        await conn.execute("UPDATE events SET retention_days = 1 WHERE id = $1", event_id)
        old = await add_execution(conn, event_id, "succeeded", now - timedelta(days=3))
        fresh = await add_execution(conn, event_id, "succeeded", now - timedelta(hours=1))
    stop = asyncio.Event()
    loop = asyncio.create_task(maintenance_loop(core, stop, interval_s=0.05))
    try:
        async with asyncio.timeout(10):
            while True:
                async with core.db.acquire() as conn:
                    if old not in await remaining(conn, event_id):
                        break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)
    async with core.db.acquire() as conn:
        assert await remaining(conn, event_id) == {fresh}
