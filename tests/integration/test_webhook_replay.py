"""Signed webhook calls are accepted once: replays, other nodes, races, the window, pruning."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core, open_core
from tests.conftest import Api
from tests.integration.test_webhooks import SECRET, hooked_event, refusal, signature_rows
from tests.support.webhooks import signed_headers


@asynccontextmanager
async def app_client(settings: Settings, core: Core) -> AsyncIterator[httpx.AsyncClient]:
    """Another app (a node of its own when `core` is its own) on the same database."""
    transport = httpx.ASGITransport(app=create_app(settings, core=core), client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def runs_of(core: Core, event_id: int) -> int:
    async with core.db.acquire() as conn:
        sql = "SELECT count(*) FROM executions WHERE event_id = $1"
        return int(await conn.fetchval(sql, event_id))


def assert_replayed(resp: httpx.Response) -> None:
    assert resp.status_code == 409, resp.text
    error = resp.json()["error"]
    assert error["code"] == "replayed" and error["details"] == {"reason": "replayed"}
    assert "already accepted" in error["message"]


async def test_a_replay_is_refused_and_a_new_timestamp_runs_again(
    api: dict[str, Api], client: httpx.AsyncClient, core: Core
) -> None:
    event_id, key = await hooked_event(api["user"], secret=SECRET)
    url = f"/api/v1/webhooks/{key}"
    body = json.dumps({"deploy": "v1"}).encode()
    now = int(time.time())
    headers = signed_headers(body, SECRET, timestamp=now)
    first = await client.post(url, content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert_replayed(await client.post(url, content=body, headers=headers))
    # The same signature in capitals is the same signature.
    upper = {
        **headers,
        "X-Cronium-Signature": "sha256=" + headers["X-Cronium-Signature"][7:].upper(),
    }
    assert_replayed(await client.post(url, content=body, headers=upper))
    again = await client.post(
        url, content=body, headers=signed_headers(body, SECRET, timestamp=now + 1)
    )
    assert again.status_code == 202, again.text
    assert await runs_of(core, event_id) == 2


async def test_a_replay_to_another_node_on_the_same_database_is_refused(
    api: dict[str, Api], client: httpx.AsyncClient, settings: Settings, core: Core
) -> None:
    event_id, key = await hooked_event(api["user"], secret=SECRET)
    body = b'{"node": "a"}'
    headers = signed_headers(body, SECRET)
    other = await open_core(settings, run_migrations=False)
    try:
        async with app_client(settings, other) as second_node:
            accepted = await client.post(f"/api/v1/webhooks/{key}", content=body, headers=headers)
            assert accepted.status_code == 202, accepted.text
            replay = await second_node.post(
                f"/api/v1/webhooks/{key}", content=body, headers=headers
            )
            assert_replayed(replay)
    finally:
        await other.close()
    assert await runs_of(core, event_id) == 1


async def _release_when_waiting(lock: asyncpg.Connection, waiters: int) -> None:
    """Commit the table lock once `waiters` requests are queued behind it."""
    sql = (
        "SELECT count(*) FROM pg_locks "
        "WHERE relation = 'webhook_signatures'::regclass AND NOT granted"
    )
    for _ in range(3000):
        if await lock.fetchval(sql) >= waiters:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the requests never reached the replay memory")
    await lock.execute("COMMIT")


async def test_identical_deliveries_at_the_same_moment_start_exactly_one_run(
    api: dict[str, Api], client: httpx.AsyncClient, core: Core, database_url: str
) -> None:
    event_id, key = await hooked_event(api["user"], secret=SECRET)
    body = b'{"delivery": "duplicated"}'
    headers = signed_headers(body, SECRET)
    # Hold the table so all three verified requests queue at the insert, then let them race.
    lock = await asyncpg.connect(database_url)
    try:
        await lock.execute("BEGIN; LOCK TABLE webhook_signatures IN EXCLUSIVE MODE")
        *responses, _ = await asyncio.gather(
            *(
                client.post(f"/api/v1/webhooks/{key}", content=body, headers=headers)
                for _ in range(3)
            ),
            _release_when_waiting(lock, 3),
        )
    finally:
        await lock.close()
    codes = sorted(r.status_code for r in responses)
    assert codes == [202, 409, 409], [r.text for r in responses]
    for resp in responses:
        if resp.status_code == 409:
            assert_replayed(resp)
    assert await runs_of(core, event_id) == 1
    assert await signature_rows(core) == 1


async def test_a_refused_start_does_not_use_up_the_signature(
    api: dict[str, Api], client: httpx.AsyncClient, core: Core
) -> None:
    user = api["user"]
    event_id, key = await hooked_event(user, secret=SECRET)
    body = b'{"later": true}'
    headers = signed_headers(body, SECRET)
    await user.post(f"/events/{event_id}/pause")
    paused = await client.post(f"/api/v1/webhooks/{key}", content=body, headers=headers)
    assert paused.status_code == 409 and paused.json()["error"]["code"] == "conflict"
    await user.post(f"/events/{event_id}/activate")
    resp = await client.post(f"/api/v1/webhooks/{key}", content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    assert_replayed(await client.post(f"/api/v1/webhooks/{key}", content=body, headers=headers))
    assert await runs_of(core, event_id) == 1


async def test_the_window_follows_the_setting(
    api: dict[str, Api], settings: Settings, core: Core
) -> None:
    _, key = await hooked_event(api["user"], secret=SECRET)
    narrow = settings.model_copy(update={"webhook_tolerance_s": 60})
    body = b"{}"
    now = int(time.time())
    async with app_client(narrow, dataclasses.replace(core, settings=narrow)) as client:
        url = f"/api/v1/webhooks/{key}"
        old = signed_headers(body, SECRET, timestamp=now - 120)
        reason, message = refusal(await client.post(url, content=body, headers=old))
        assert reason == "stale_timestamp" and "outside the 60 s window" in message
        recent = signed_headers(body, SECRET, timestamp=now - 30)
        assert (await client.post(url, content=body, headers=recent)).status_code == 202


async def test_an_accepted_call_prunes_signatures_a_window_past_their_expiry(
    api: dict[str, Api], client: httpx.AsyncClient, core: Core
) -> None:
    _, key = await hooked_event(api["user"], secret=SECRET)
    now = datetime.now(UTC)
    seeded = {
        "long-gone": now - timedelta(seconds=700),  # expired more than a window (300 s) ago
        "just-expired": now - timedelta(seconds=100),  # kept for nodes with a slow clock
        "still-fresh": now + timedelta(seconds=100),
    }
    async with core.db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO webhook_signatures (webhook_key, digest, expires_at) "
            "VALUES ('another-key-1', $1, $2)",
            list(seeded.items()),
        )
    body = b'{"prune": true}'
    resp = await client.post(
        f"/api/v1/webhooks/{key}", content=body, headers=signed_headers(body, SECRET)
    )
    assert resp.status_code == 202, resp.text
    async with core.db.acquire() as conn:
        sql = "SELECT digest FROM webhook_signatures WHERE webhook_key = 'another-key-1'"
        left = {row["digest"] for row in await conn.fetch(sql)}
    assert left == {"just-expired", "still-fresh"}
    assert await signature_rows(core) == 3


async def test_signed_webhooks_keep_their_body_and_rate_limits(
    api: dict[str, Api], client: httpx.AsyncClient, core: Core
) -> None:
    _, key = await hooked_event(api["user"], secret=SECRET)
    url = f"/api/v1/webhooks/{key}"
    huge = b'"' + b"x" * (1024 * 1024 + 10) + b'"'
    too_big = await client.post(url, content=huge, headers=signed_headers(huge, SECRET))
    assert too_big.status_code == 413
    forged = signed_headers(b"{}", "not-the-secret-at-all")
    codes = [(await client.post(url, content=b"{}", headers=forged)).status_code for _ in range(59)]
    assert codes == [401] * 59
    limited = await client.post(url, content=b"{}", headers=signed_headers(b"{}", SECRET))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert await signature_rows(core) == 0
