"""Valkey is optional: runs, the Runtime API, live logs and rate limits with it absent,
present, and stopped mid-run then started again (a real redis-server as the stand-in).

Each test starts its own redis-server on a free loopback port, so stopping it disturbs
nobody. Without the binary these tests skip; with CRONIUM_TEST_REQUIRE_ALL=1 they fail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core, open_core
from cronium.engine.node import Node
from cronium.logs.hub import ValkeyHub
from cronium.services.ratelimit import ValkeyRateLimiter
from tests.conftest import Api, Persona, wait_for_status
from tests.support.loopback import serve_on_loopback
from tests.support.tool_receivers import free_port
from tests.support.valkey import RedisServer

CURL = (
    'curl -s -o /dev/null -w "%{http_code}" --unix-socket "${CRONIUM_RUNTIME_URL#unix://}" '
    '-H "Authorization: Bearer $CRONIUM_EXECUTION_TOKEN" http://x/runtime/v1/input'
)


@pytest.fixture(params=["absent", "present"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """VALKEY_URL from the test's `redis_server` when it asks for one."""
    wants = "redis_server" in request.fixturenames and (
        "mode" not in request.fixturenames or request.getfixturevalue("mode") == "present"
    )
    if not wants:
        return settings
    server: RedisServer = request.getfixturevalue("redis_server")
    return settings.model_copy(update={"valkey_url": server.url, "runtime_rate_limit_per_s": 1000})


@pytest.fixture
async def server(settings: Settings, core: Core) -> AsyncIterator[str]:
    async with serve_on_loopback(settings, core) as address:
        yield address


async def ready_valkey(server: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://{server}") as c:
        resp = await c.get("/ready")
    assert resp.status_code == 200, resp.text  # Valkey never makes the node unready
    return dict(resp.json()["checks"]["valkey"])


async def until(check: Any, timeout_s: float = 15) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def start_run(api: Api, lines: int, pause_s: float) -> int:
    script = f"for i in $(seq 1 {lines}); do echo line-$i rt-$({CURL}); sleep {pause_s}; done"
    resp = await api.post("/events", json={"name": "v", "language": "bash", "content": script})
    assert resp.status_code == 201, resp.text
    resp = await api.post(f"/events/{resp.json()['id']}/run")
    assert resp.status_code == 202, resp.text
    return int(resp.json()["execution_id"])


class Viewer:
    """Reads the WebSocket stream into `messages` until "end"."""

    def __init__(self, server: str, execution_id: int, token: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._args = (server, execution_id, token)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        server, execution_id, token = self._args
        async with connect(
            f"ws://{server}/api/v1/executions/{execution_id}/stream",
            additional_headers={"Authorization": f"Bearer {token}"},
            proxy=None,
        ) as ws:
            while True:
                message = json.loads(await ws.recv())
                self.messages.append(message)
                if message["type"] == "end":
                    return

    def lines(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "log" and m["stream"] == "stdout"]


async def check_complete(api: Api, viewer: Viewer, execution_id: int, lines: int) -> None:
    await asyncio.wait_for(viewer.task, timeout=60)
    assert (await wait_for_status(api, execution_id))["status"] == "succeeded"
    logs = [m for m in viewer.messages if m["type"] == "log"]
    assert [m["seq"] for m in logs] == list(range(1, len(logs) + 1))
    assert [m["line"] for m in viewer.lines()] == [f"line-{i} rt-200" for i in range(1, lines + 1)]
    stored = (await api.get(f"/executions/{execution_id}/logs?limit=1000")).json()["items"]
    assert [(s["seq"], s["line"]) for s in stored] == [(m["seq"], m["line"]) for m in logs]


async def test_runs_runtime_api_and_live_logs_with_valkey_absent_or_present(
    mode: str,
    redis_server: RedisServer,
    core: Core,
    server: str,
    node: Node,
    api: dict[str, Api],
    personas: dict[str, Persona],
) -> None:
    assert core.valkey.backend == ("valkey" if mode == "present" else "memory")
    valkey = await ready_valkey(server)
    assert valkey["status"] == ("ok" if mode == "present" else "absent")
    assert valkey["in_use"] == ("valkey" if mode == "present" else "memory")
    execution_id = await start_run(api["user"], lines=10, pause_s=0.05)
    viewer = Viewer(server, execution_id, personas["user"].token)
    await check_complete(api["user"], viewer, execution_id, 10)
    if mode == "present":
        assert isinstance(core.limiter, ValkeyRateLimiter)
        assert core.valkey.client is not None
        assert await core.valkey.client.exists(f"cronium:rl:runtime:{execution_id}") == 1


async def test_valkey_stopped_mid_run_and_started_again_loses_nothing(
    redis_server: RedisServer,
    core: Core,
    server: str,
    node: Node,
    api: dict[str, Api],
    personas: dict[str, Persona],
) -> None:
    assert (await ready_valkey(server))["status"] == "ok"
    lines = 60
    execution_id = await start_run(api["user"], lines=lines, pause_s=0.1)
    viewer = Viewer(server, execution_id, personas["user"].token)

    async def seen(n: int) -> bool:
        return len(viewer.lines()) >= n

    await until(lambda: seen(5))
    redis_server.stop()
    valkey = await ready_valkey(server)
    assert valkey["status"] == "error" and str(redis_server.port) in valkey["reason"]
    assert valkey["in_use"] == "memory"
    before = len(viewer.lines())
    await until(lambda: seen(before + 10))  # lines keep flowing while Valkey is down
    assert (await ready_valkey(server))["status"] == "error"

    redis_server.start()

    async def back() -> bool:
        return (await ready_valkey(server))["in_use"] == "valkey"

    await until(back)
    assert (await ready_valkey(server))["status"] == "ok"
    assert not viewer.task.done(), "the run ended before Valkey came back: make it longer"
    await check_complete(api["user"], viewer, execution_id, lines)


async def test_rate_limits_are_shared_by_nodes_with_valkey(
    redis_server: RedisServer, settings: Settings
) -> None:
    a, b = (
        await open_core(settings, run_migrations=False),
        await open_core(settings, run_migrations=False),
    )
    try:
        assert a.valkey.usable and b.valkey.usable
        key = f"test:{free_port()}"
        for _ in range(3):
            assert await a.limiter.retry_after_s(key, limit=5, window_s=60) is None
            await a.limiter.hit(key, window_s=60)
        for _ in range(2):
            assert await b.limiter.retry_after_s(key, limit=5, window_s=60) is None
            await b.limiter.hit(key, window_s=60)
        # Five hits across two nodes: both see the limit.
        for core in (a, b):
            wait = await core.limiter.retry_after_s(key, limit=5, window_s=60)
            assert wait is not None and 1 <= wait <= 60
        await a.limiter.reset(key)
        assert await b.limiter.retry_after_s(key, limit=5, window_s=60) is None

        # Valkey gone: each node still enforces its own count.
        redis_server.stop()
        other = f"test:{free_port()}"
        for _ in range(2):
            assert await a.limiter.retry_after_s(other, limit=2, window_s=60) is None
            await a.limiter.hit(other, window_s=60)
        assert await a.limiter.retry_after_s(other, limit=2, window_s=60) is not None
        assert not a.valkey.usable
        assert await b.limiter.retry_after_s(other, limit=2, window_s=60) is None
    finally:
        await a.close()
        await b.close()


async def test_rate_limits_without_valkey_hold_per_process(settings: Settings) -> None:
    assert settings.valkey_url is None
    a, b = (
        await open_core(settings, run_migrations=False),
        await open_core(settings, run_migrations=False),
    )
    try:
        assert a.valkey.state == "absent"
        for _ in range(2):
            await a.limiter.hit("k", window_s=60)
        assert await a.limiter.retry_after_s("k", limit=2, window_s=60) is not None
        assert await b.limiter.retry_after_s("k", limit=2, window_s=60) is None
    finally:
        await a.close()
        await b.close()


async def test_login_limit_counts_attempts_on_every_node(
    redis_server: RedisServer, settings: Settings, core: Core, personas: dict[str, Persona]
) -> None:
    other = await open_core(settings, run_migrations=False)
    try:
        email = personas["user"].email
        apps = [create_app(settings, core=c) for c in (core, other)]
        statuses = []
        for i in range(12):
            transport = httpx.ASGITransport(app=apps[i % 2], client=(f"10.0.0.{i}", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                resp = await c.post("/api/v1/auth/login", json={"email": email, "password": "x"})
            statuses.append(resp.status_code)
        # 10 failures per account in the window, whichever node saw them.
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429, 429]
    finally:
        await other.close()


async def test_live_wake_ups_cross_nodes_through_valkey(
    redis_server: RedisServer, settings: Settings
) -> None:
    a, b = (
        await open_core(settings, run_migrations=False),
        await open_core(settings, run_migrations=False),
    )
    try:
        assert isinstance(a.hub, ValkeyHub) and isinstance(b.hub, ValkeyHub)
        event = b.hub.subscribe(4242)
        await asyncio.sleep(0.2)  # b's subscription is active
        a.hub.publish(4242)
        await asyncio.wait_for(event.wait(), timeout=5)
    finally:
        await a.close()
        await b.close()
