"""PostgreSQL restarts while jobs run and print: the nodes stay up, every job's result is
stored once the database is back, and no line a job printed during the outage is lost.

The random chaos run can miss a window like this one; this test aims at it on purpose:
jobs that print throughout, finish while the database is down, and a node whose leases,
claims and log flushes all fail for a few seconds.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.chaos.conftest import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

JOBS = 6
LINES = 40
# 40 lines 0.1 s apart: 4 s of output, so every job prints before, during and after the
# outage, and some finish while the database is still down.
SCRIPT = f'for i in $(seq 1 {LINES}); do echo "line $i"; sleep 0.1; done'
OUTAGE_S = 4.0


async def wait_running(conn: asyncpg.Connection, ids: list[int]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = await conn.fetchval(
            """SELECT count(*) FROM log_lines
               WHERE execution_id = ANY($1) AND stream = 'stdout' AND line = 'line 5'""",
            ids,
        )
        if running == len(ids):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the jobs did not start printing")


async def wait_settled(dsn: str, ids: list[int]) -> list[asyncpg.Record]:
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.5)
            continue
        try:
            rows = await conn.fetch(
                "SELECT id, status::text AS status, error FROM executions WHERE id = ANY($1)", ids
            )
        finally:
            await conn.close()
        if all(r["status"] not in ("queued", "running", "waiting") for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"executions still open: {[dict(r) for r in rows]}")
        await asyncio.sleep(0.5)


async def test_jobs_running_through_a_postgres_restart_keep_their_result_and_lines(
    cluster: Cluster,
) -> None:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    async with httpx.AsyncClient(
        base_url=cluster.nodes[0].base_url, headers=headers, timeout=30
    ) as api:
        resp = await api.post(
            "/api/v1/events", json={"name": "printer", "language": "bash", "content": SCRIPT}
        )
        assert resp.status_code == 201, resp.text
        event_id = resp.json()["id"]
        ids = []
        for _ in range(JOBS):
            run = await api.post(f"/api/v1/events/{event_id}/run")
            assert run.status_code == 202, run.text
            ids.append(int(run.json()["execution_id"]))

    conn = await asyncpg.connect(cluster.postgres.asyncpg_dsn)
    try:
        await wait_running(conn, ids)
    finally:
        await conn.close()
    await cluster.postgres.stop()
    await asyncio.sleep(OUTAGE_S)
    await cluster.postgres.start()

    rows = await wait_settled(cluster.postgres.asyncpg_dsn, ids)
    for node in cluster.nodes:
        node.assert_alive()
        assert not node.trouble(), node.trouble()
    assert {r["id"]: r["status"] for r in rows} == dict.fromkeys(ids, "succeeded"), [
        dict(r) for r in rows
    ]
    conn = await asyncpg.connect(cluster.postgres.asyncpg_dsn)
    try:
        logs = await conn.fetch(
            """SELECT execution_id, array_agg(line ORDER BY seq) AS lines FROM log_lines
               WHERE execution_id = ANY($1) AND stream = 'stdout' GROUP BY execution_id""",
            ids,
        )
    finally:
        await conn.close()
    want = [f"line {i}" for i in range(1, LINES + 1)]
    for node in cluster.nodes:
        assert await node.stop(), f"node {node.name} did not stop on SIGTERM:\n{node.tail()}"
    for row in logs:
        # A batch stored just as the connection dropped may be stored twice; none is lost.
        assert list(dict.fromkeys(row["lines"])) == want, (row["execution_id"], row["lines"])
    assert len(logs) == JOBS
