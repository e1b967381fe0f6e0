"""A Runtime API call that arrives after its job's end is saved is refused, even when the
socket's cache still holds the token.

The worker takes a token out of the socket's cache before it saves the job's end, but a
job can also end elsewhere: another node recovers it once its lease has run out, while the
node that ran it notices only at its next heartbeat. Here the end is saved the way the
worker saves it (`queue.finish` and `settle_execution`) while the worker still runs the
script, so the cache still holds the token: every call must be refused by the database
check of its own operation, and change nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronium.config import Settings
from cronium.core import Core
from cronium.db.models import JobStatus
from cronium.engine import queue
from cronium.engine.node import Node
from cronium.runtime.tokens import ENDED
from tests.conftest import Api, wait_for_status
from tests.security.runtime_calls import (
    CALLS,
    KEY,
    assert_refused,
    both_ways,
    call,
    hold_job,
    variables_of,
)
from tests.support.runs import log_lines

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Long leases: the node's heartbeat (every lease/3) does not notice the end, and so
    does not take the token out of the cache, while the test runs."""
    return settings.model_copy(update={"lease_s": 600.0})


async def job_row(core: Core, execution_id: int) -> dict[str, Any]:
    async with core.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, status::text AS status, output, condition, runtime_token_hash"
            " FROM jobs WHERE execution_id = $1",
            execution_id,
        )
    assert row is not None
    return dict(row)


async def test_a_call_after_the_end_is_saved_is_refused_though_the_token_is_cached(
    api: dict[str, Api],
    node: Node,
    core: Core,
    runtime_socket: Path,
    client: httpx.AsyncClient,
) -> None:
    user = api["user"]
    assert (await user.post("/variables", json={"key": KEY, "value": "kept"})).status_code == 201
    job = await hold_job(user, runtime_socket.parent)
    async with both_ways(runtime_socket, client) as ways:
        for way, c in ways.items():  # while it runs, the token works (and is cached)
            resp = await call(c, "GET", "/runtime/v1/context", job.token)
            assert resp.status_code == 200, (way, resp.text)
        assert core.runtime_callers.get(job.token) is not None

        # The job's only log line (the worker's "attempt 1/1 …") is stored: its log writer
        # has nothing left to flush while the end is saved.
        async with asyncio.timeout(30):
            while not await log_lines(user, job.execution_id):
                await asyncio.sleep(0.05)
        row = await job_row(core, job.execution_id)
        async with core.db.acquire() as conn, conn.transaction():
            assert await queue.finish(
                conn, row["id"], core.node_id, JobStatus.succeeded, exit_code=0, error=None
            )
            assert await queue.settle_execution(conn, job.execution_id) is not None
        assert core.runtime_callers.get(job.token) is not None, "the gap is open"

        refused: dict[str, tuple[int, str]] = {}
        for way, c in ways.items():
            for method, path in CALLS:
                resp = await call(c, method, path, job.token)
                if path.endswith("/context") and way == "socket":
                    # Served from the cache alone (no database): the job's own description.
                    assert resp.status_code == 200, resp.text
                    continue
                assert_refused(resp, f"{way} {method} {path}")
                refused[f"{way} {method} {path}"] = (
                    resp.status_code,
                    resp.json()["error"]["message"],
                )
        assert set(refused.values()) == {(401, ENDED)}
        assert len(refused) == 2 * len(CALLS) - 1
        assert core.runtime_callers.get(job.token) is not None  # refused with a cached token

    ended = await job_row(core, job.execution_id)
    assert (ended["status"], ended["output"], ended["condition"]) == ("succeeded", None, None)
    assert await variables_of(user) == {KEY: "kept"}
    await job.release()
    done = await wait_for_status(user, job.execution_id)
    assert (done["status"], done["output"], done["condition"]) == ("succeeded", None, None)
