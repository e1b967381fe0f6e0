"""Settling an execution whose jobs end at the same moment, on two connections."""

from __future__ import annotations

import asyncio

from cronium.core import Core
from cronium.db.models import JobStatus, Trigger
from cronium.engine import queue
from tests.conftest import Api
from tests.support.runs import create_event


async def test_two_jobs_ending_together_settle_the_execution_once(
    api: dict[str, Api], core: Core
) -> None:
    event_id = await create_event(api["user"])
    async with core.db.acquire() as conn, conn.transaction():
        execution_id = await queue.enqueue(
            conn,
            queue.NewExecution(
                event_id=event_id,
                owner_id=await conn.fetchval("SELECT owner_id FROM events WHERE id = $1", event_id),
                trigger=Trigger.manual,
                targets=[queue.Target("a"), queue.Target("b")],
                triggered_by="test",
            ),
        )
    async with core.db.acquire() as conn:
        jobs = await queue.claim(conn, "node-x", 2, 30)
    assert len(jobs) == 2

    async def end(job_id: int, committed: asyncio.Event | None) -> queue.FinishedExecution | None:
        async with core.db.acquire() as conn, conn.transaction():
            assert await queue.finish(
                conn, job_id, "node-x", JobStatus.succeeded, exit_code=0, error=None
            )
            finished = await queue.settle_execution(conn, execution_id)
            if committed is not None:
                # Hold the first transaction open until the second one counts.
                await asyncio.sleep(0.3)
            return finished

    first = asyncio.create_task(end(jobs[0].id, asyncio.Event()))
    await asyncio.sleep(0.1)  # the first has ended its job and counted, not committed
    second = asyncio.create_task(end(jobs[1].id, None))
    results = await asyncio.gather(first, second)
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].status.value == "succeeded"
    async with core.db.acquire() as conn:
        status = await conn.fetchval(
            "SELECT status::text FROM executions WHERE id = $1", execution_id
        )
    assert status == "succeeded"
