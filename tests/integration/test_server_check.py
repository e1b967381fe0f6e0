"""Server checks against real OpenSSH servers (127.0.0.1, random ports): what a check
pins, reports and stores, each failure's code, re-pinning, and the periodic health pass."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cronium.config import Settings
from cronium.core import Core
from cronium.domain.servers import load_server_spec
from cronium.engine.node import Node
from cronium.executors.registry import local_only
from cronium.executors.ssh_connect import SshError
from cronium.services.server_check import check_due_servers, parse_probe
from tests.conftest import Api
from tests.support.sshd import SshHost, add_server, ssh_user, sshd_factory

__all__ = ["ssh_user", "sshd_factory"]

HostFactory = Callable[..., SshHost]
CONNECT_TIMEOUT_S = 3.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short connect timeout, so that a silent host fails the check quickly."""
    return settings.model_copy(update={"ssh_connect_timeout_s": CONNECT_TIMEOUT_S})


async def check(api: Api, server_id: int) -> dict[str, Any]:
    resp = await api.post(f"/servers/{server_id}/check")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def other_fingerprint() -> str:
    digest = hashlib.sha256(secrets.token_bytes(32)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@contextlib.asynccontextmanager
async def silent_port() -> AsyncIterator[int]:
    """A loopback port that accepts TCP and reads, but never says a word (no SSH banner)."""
    peers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(4096):
                pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in peers:
            writer.close()
        await server.wait_closed()


async def test_first_check_pins_the_key_and_reports_the_system(
    user: Api, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("check-alpha")
    server_id = await add_server(user, host)
    before = (await user.get(f"/servers/{server_id}")).json()
    assert before["status"] == "unknown"
    assert before["host_key_fingerprint"] is None

    body = await check(user, server_id)

    assert body["ok"] is True, body
    assert body["status"] == "online"
    assert body["error"] is None
    assert body["host_key_fingerprint"] == host.fingerprint
    assert isinstance(body["latency_ms"], int) and body["latency_ms"] >= 0
    assert body["duration_ms"] >= body["latency_ms"]
    info = body["system_info"]
    assert info["user"] == host.user.name
    assert info["shell"] == "/bin/bash"
    assert info["kernel"].startswith("Linux ")
    assert info["os"] and '"' not in info["os"]
    tools = info["tools"]
    for tool in ("python3", "node", "curl", "bash", "setsid"):
        assert tools[tool]["present"] is True, (tool, tools)
        assert tools[tool]["path"].startswith("/"), (tool, tools)
    assert tools["python3"]["version"].startswith("3.")
    assert tools["node"]["version"][0].isdigit()
    assert "version" not in tools["curl"]
    assert info["warnings"] == []

    server = body["server"]
    assert server["id"] == server_id
    assert server["status"] == "online"
    assert server["last_error"] is None
    assert server["last_checked_at"] is not None
    assert server["system_info"] == info
    assert server["host_key_fingerprint"] == host.fingerprint
    # Stored, not only answered.
    assert (await user.get(f"/servers/{server_id}")).json() == server


async def test_a_wrong_fingerprint_given_up_front_is_refused(
    user: Api, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("check-beta")
    wrong = other_fingerprint()
    server_id = await add_server(user, host, host_key_fingerprint=wrong)

    body = await check(user, server_id)

    assert body["ok"] is False
    assert body["status"] == "offline"
    assert body["latency_ms"] is None
    assert body["error"]["code"] == "host_key_mismatch", body
    assert wrong in body["error"]["message"]
    assert host.fingerprint in body["error"]["message"]
    assert body["host_key_fingerprint"] == wrong  # nothing was re-pinned
    assert body["server"]["last_error"] == body["error"]["message"]


async def test_the_right_fingerprint_given_up_front_is_accepted(
    user: Api, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("check-gamma")
    server_id = await add_server(user, host, host_key_fingerprint=host.fingerprint)
    body = await check(user, server_id)
    assert body["ok"] is True, body
    assert body["host_key_fingerprint"] == host.fingerprint


async def test_a_changed_host_key_is_refused_until_repinned_with_null(
    user: Api, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("check-delta")
    server_id = await add_server(user, host)
    first = await check(user, server_id)
    assert first["ok"] is True, first
    old = host.fingerprint

    host.new_host_key()
    refused = await check(user, server_id)

    assert refused["ok"] is False
    assert refused["status"] == "offline"
    assert refused["error"]["code"] == "host_key_mismatch"
    message = refused["error"]["message"]
    assert "re-pin" in message and host.fingerprint in message and old in message
    assert refused["host_key_fingerprint"] == old
    assert refused["server"]["last_error"] == message
    # The last system_info found stays; only status and error change.
    assert refused["system_info"] is None
    assert refused["server"]["system_info"] == first["system_info"]
    # Refused again: a mismatch is never pinned over by itself.
    assert (await check(user, server_id))["error"]["code"] == "host_key_mismatch"

    resp = await user.patch(f"/servers/{server_id}", json={"host_key_fingerprint": None})
    assert resp.status_code == 200, resp.text
    assert resp.json()["host_key_fingerprint"] is None

    repinned = await check(user, server_id)
    assert repinned["ok"] is True, repinned
    assert repinned["status"] == "online"
    assert repinned["host_key_fingerprint"] == host.fingerprint != old
    assert repinned["server"]["last_error"] is None


async def test_a_changed_host_key_is_accepted_once_its_fingerprint_is_pinned(
    user: Api, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("check-epsilon")
    server_id = await add_server(user, host)
    assert (await check(user, server_id))["ok"] is True
    host.new_host_key()
    assert (await check(user, server_id))["error"]["code"] == "host_key_mismatch"

    resp = await user.patch(
        f"/servers/{server_id}", json={"host_key_fingerprint": host.fingerprint}
    )
    assert resp.status_code == 200, resp.text

    body = await check(user, server_id)
    assert body["ok"] is True, body
    assert body["host_key_fingerprint"] == host.fingerprint


async def test_a_wrong_password_is_auth_failed(user: Api, sshd_factory: HostFactory) -> None:
    host = sshd_factory("check-zeta")
    server_id = await add_server(
        user, host, auth={"type": "password", "password": "not-the-password"}
    )
    body = await check(user, server_id)
    assert body["ok"] is False
    assert body["status"] == "offline"
    assert body["error"]["code"] == "auth_failed", body
    assert "password" in body["error"]["message"]

    resp = await user.patch(
        f"/servers/{server_id}", json={"auth": {"type": "password", "password": host.user.password}}
    )
    assert resp.status_code == 200, resp.text
    assert (await check(user, server_id))["ok"] is True


async def test_a_stopped_server_is_connection_refused(user: Api, sshd_factory: HostFactory) -> None:
    host = sshd_factory("check-eta")
    server_id = await add_server(user, host)
    online = await check(user, server_id)
    assert online["ok"] is True, online

    host.kill()
    body = await check(user, server_id)

    assert body["ok"] is False
    assert body["status"] == "offline"
    assert body["error"]["code"] == "connection_refused", body
    assert str(host.port) in body["error"]["message"]
    assert body["server"]["status"] == "offline"
    assert body["server"]["last_checked_at"] > online["server"]["last_checked_at"]
    assert body["server"]["system_info"] == online["system_info"]


async def test_a_host_that_never_answers_is_unreachable(user: Api, ssh_user: object) -> None:
    async with silent_port() as port:
        resp = await user.post(
            "/servers",
            json={
                "name": "silent",
                "host": "127.0.0.1",
                "port": port,
                "username": "nobody",
                "auth": {"type": "password", "password": "x"},
            },
        )
        assert resp.status_code == 201, resp.text
        server_id = resp.json()["id"]
        async with asyncio.timeout(CONNECT_TIMEOUT_S + 10):
            body = await check(user, server_id)

    assert body["ok"] is False
    assert body["status"] == "offline"
    assert body["error"]["code"] == "host_unreachable", body
    assert f"{CONNECT_TIMEOUT_S:g} s" in body["error"]["message"]
    assert body["duration_ms"] >= CONNECT_TIMEOUT_S * 1000 * 0.9


async def test_who_may_check(api: dict[str, Api], sshd_factory: HostFactory) -> None:
    host = sshd_factory("check-theta")
    server_id = await add_server(api["user"], host)

    viewer = await api["viewer"].post(f"/servers/{server_id}/check")
    assert viewer.status_code == 403, viewer.text
    assert viewer.json()["error"]["code"] == "forbidden"
    foreign = await api["other"].post(f"/servers/{server_id}/check")
    assert foreign.status_code == 404, foreign.text
    assert foreign.json()["error"]["code"] == "not_found"
    missing = await api["user"].post("/servers/999999/check")
    assert missing.status_code == 404
    # Refused checks did not touch the server.
    assert (await api["user"].get(f"/servers/{server_id}")).json()["last_checked_at"] is None

    assert (await check(api["admin"], server_id))["ok"] is True


async def test_a_good_check_resets_the_breaker_and_a_changed_endpoint_drops_connections(
    user: Api, core: Core, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("check-iota")
    server_id = await add_server(user, host)
    async with core.db.acquire() as conn:
        spec = await load_server_spec(core.cipher, conn, server_id)
    assert spec is not None
    for _ in range(5):
        core.ssh.failed(spec, SshError("connection_refused", "refused"))
    assert core.ssh.backoff_remaining_s(server_id) > 0

    assert (await check(user, server_id))["ok"] is True
    assert core.ssh.backoff_remaining_s(server_id) == 0

    async with core.db.acquire() as conn:
        spec = await load_server_spec(core.cipher, conn, server_id)
    assert spec is not None
    async with core.ssh.lease(spec) as pooled:
        pass
    resp = await user.patch(f"/servers/{server_id}", json={"max_concurrent_jobs": 3})
    assert resp.status_code == 200
    assert pooled.alive  # nothing about the connection changed

    resp = await user.patch(f"/servers/{server_id}", json={"port": host.port + 1})
    assert resp.status_code == 200
    for _ in range(100):
        if not pooled.alive:
            break
        await asyncio.sleep(0.02)
    assert not pooled.alive


# -- periodic health checks --------------------------------------------------------------


async def _servers(core: Core) -> dict[int, dict[str, Any]]:
    async with core.db.acquire() as conn:
        rows = await conn.fetch("SELECT id, status::text, last_checked_at, last_error FROM servers")
    return {row["id"]: dict(row) for row in rows}


async def test_the_health_pass_marks_servers_online_and_offline(
    user: Api, core: Core, sshd_factory: HostFactory
) -> None:
    up, down = sshd_factory("check-up"), sshd_factory("check-down")
    up_id, down_id = await add_server(user, up), await add_server(user, down)
    down.kill()

    results = await check_due_servers(core, 60.0)

    assert sorted(r.server_id for r in results) == sorted([up_id, down_id])
    servers = await _servers(core)
    assert servers[up_id]["status"] == "online"
    assert servers[up_id]["last_error"] is None
    assert servers[down_id]["status"] == "offline"
    assert "connection refused" in servers[down_id]["last_error"]
    # Both were just checked: nothing is due within the interval.
    assert await check_due_servers(core, 60.0) == []

    # Checked longer ago than the interval: due again.
    async with core.db.acquire() as conn:
        await conn.execute(
            "UPDATE servers SET last_checked_at = now() - interval '2 minutes' WHERE id = $1",
            up_id,
        )
    assert [r.server_id for r in await check_due_servers(core, 60.0)] == [up_id]


async def test_concurrent_health_passes_check_each_server_once(
    user: Api, core: Core, sshd_factory: HostFactory
) -> None:
    hosts = [sshd_factory(f"check-many-{n}") for n in range(3)]
    ids = [await add_server(user, host) for host in hosts]

    # Two nodes' passes at once, each allowed to run several checks at a time.
    first, second = await asyncio.gather(
        check_due_servers(core, 60.0, concurrency=2), check_due_servers(core, 60.0, concurrency=2)
    )

    checked = [r.server_id for r in [*first, *second]]
    assert sorted(checked) == sorted(ids)
    assert all(r.ok for r in [*first, *second])


async def test_the_scheduler_node_runs_the_health_checks(
    user: Api, core: Core, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("check-node")
    server_id = await add_server(user, host)
    # A scheduler node of its own, with checks every second.
    scheduler_core = dataclasses.replace(
        core, settings=core.settings.model_copy(update={"server_check_interval_s": 1.0}), _ssh=None
    )
    node = Node(scheduler_core, frozenset({"scheduler"}), local_only())
    task = asyncio.create_task(node.run())
    try:
        for _ in range(300):
            if (await _servers(core))[server_id]["status"] == "online":
                break
            await asyncio.sleep(0.05)
        assert (await _servers(core))[server_id]["status"] == "online"

        host.kill()
        for _ in range(300):
            if (await _servers(core))[server_id]["status"] == "offline":
                break
            await asyncio.sleep(0.05)
        assert (await _servers(core))[server_id]["status"] == "offline"
    finally:
        node.stop()
        await asyncio.wait_for(task, timeout=30)
        await scheduler_core.ssh.aclose()


def test_probe_output_parsing() -> None:
    info = parse_probe(
        'os="Alpine Linux v3.19"\nkernel=Linux 6.1.0 aarch64\nshell=/bin/ash\nuser=deploy\n'
        "path.curl=/usr/bin/curl\npath.python3=/usr/bin/python3\n"
        "version.python3=Python 3.11.8\n"
    )
    assert info["os"] == "Alpine Linux v3.19"
    assert info["kernel"] == "Linux 6.1.0 aarch64"
    assert info["tools"]["python3"] == {
        "present": True,
        "path": "/usr/bin/python3",
        "version": "3.11.8",
    }
    assert info["tools"]["node"] == {"present": False, "path": None, "version": None}
    assert info["tools"]["setsid"] == {"present": False, "path": None}
    assert len(info["warnings"]) == 3
    assert any("setsid" in w for w in info["warnings"])
    # No os-release (a BSD, say): the kernel's name stands in.
    assert parse_probe("kernel=FreeBSD 14.0-RELEASE amd64\n")["os"] == "FreeBSD"
