"""Liveness and readiness: each dependency reported as ok / absent / error with a reason."""

from __future__ import annotations

import dataclasses
import socket

import httpx
import pytest

from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core
from cronium.db.session import create_engine, session_factory


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ready_with(core: Core, settings: Settings, **changes: object) -> httpx.Response:
    new_settings = settings.model_copy(update=changes)
    new_core = dataclasses.replace(core, settings=new_settings)
    app = create_app(new_settings, core=new_core)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get("/ready")


async def test_health_needs_no_login(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


async def test_ready_reports_every_dependency(client: httpx.AsyncClient) -> None:
    resp = await client.get("/ready")
    assert resp.status_code == 200
    checks = resp.json()["checks"]
    assert set(checks) == {"database", "docker", "valkey", "executor"}
    assert checks["database"] == {"status": "ok", "reason": None}
    for name in ("docker", "valkey"):
        assert checks[name]["status"] in ("ok", "absent", "error")


async def test_ready_says_valkey_is_absent_when_not_configured(
    core: Core, settings: Settings
) -> None:
    resp = await ready_with(core, settings, valkey_url=None)
    assert resp.json()["checks"]["valkey"]["status"] == "absent"
    assert "VALKEY_URL" in resp.json()["checks"]["valkey"]["reason"]


async def test_ready_reports_a_configured_valkey(core: Core, settings: Settings) -> None:
    resp = await ready_with(core, settings, valkey_url="redis://127.0.0.1:6379/0")
    valkey = resp.json()["checks"]["valkey"]
    if valkey["status"] != "ok":
        from tests.conftest import REQUIRE_ALL

        if REQUIRE_ALL:
            pytest.fail(f"Redis/Valkey on 127.0.0.1:6379 is required: {valkey}")
        pytest.skip(f"no Redis/Valkey on 127.0.0.1:6379: {valkey['reason']}")
    assert resp.status_code == 200


async def test_ready_reports_an_unreachable_valkey_as_error_but_stays_ready(
    core: Core, settings: Settings
) -> None:
    port = closed_port()
    resp = await ready_with(core, settings, valkey_url=f"redis://127.0.0.1:{port}/0")
    assert resp.status_code == 200
    valkey = resp.json()["checks"]["valkey"]
    assert valkey["status"] == "error"
    assert f"127.0.0.1:{port}" in valkey["reason"]


async def test_ready_reports_an_unreachable_docker_as_error(
    core: Core, settings: Settings, tmp_path: object
) -> None:
    resp = await ready_with(core, settings, docker_host="unix:///nonexistent/docker.sock")
    docker = resp.json()["checks"]["docker"]
    assert docker["status"] == "error"
    assert "/nonexistent/docker.sock" in docker["reason"]


async def test_ready_is_503_when_the_database_is_down(core: Core, settings: Settings) -> None:
    engine = create_engine(
        f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing", connect_timeout_s=2
    )
    down = dataclasses.replace(core, engine=engine, sessions=session_factory(engine))
    app = create_app(settings, core=down)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.get("/ready")
        health = await c.get("/health")
    await engine.dispose()
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "error"
    assert body["checks"]["database"]["reason"]
    assert health.status_code == 200
