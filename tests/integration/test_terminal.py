"""WS /api/v1/servers/{id}/terminal against a real sshd and a real uvicorn socket.

The owner gets a PTY shell (commands run, resizes reach `stty size`, `exit` ends it with
its status); viewers, other users and anonymous clients are refused at the handshake
(1008 before accepting, which the client sees as HTTP 403) and nothing is opened; every
session leaves terminal.open and terminal.close rows in the audit log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from cronium.api.deps import SESSION_COOKIE
from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core
from cronium.db.session import asyncpg_dsn
from cronium.services import terminal as terminal_service
from tests.conftest import PASSWORD, Api
from tests.support.sshd import SshHost, add_server, remote_leftovers, ssh_user, sshd_factory

__all__ = ["ssh_user", "sshd_factory"]

HostFactory = Callable[..., SshHost]


@pytest.fixture
async def server(settings: Settings, core: Core) -> AsyncIterator[str]:
    """`host:port` of the app served by uvicorn on a random local port."""
    config = uvicorn.Config(
        create_app(settings, core=core),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    app_server = uvicorn.Server(config)
    task = asyncio.create_task(app_server.serve())
    async with asyncio.timeout(10):
        while not app_server.started:
            await asyncio.sleep(0.01)
    port = app_server.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    app_server.should_exit = True
    await asyncio.wait_for(task, timeout=15)


def open_terminal(
    server: str,
    server_id: int,
    token: str | None,
    query: str = "",
    *,
    cookie: str | None = None,
    origin: str | None = None,
) -> connect:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if cookie is not None:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    return connect(
        f"ws://{server}/api/v1/servers/{server_id}/terminal{query}",
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        proxy=None,
        open_timeout=15,
    )


async def send_input(ws: ClientConnection, data: str) -> None:
    await ws.send(json.dumps({"type": "input", "data": data}))


async def read_until(ws: ClientConnection, needle: str, timeout_s: float = 15) -> str:
    """The output (binary frames, decoded) up to the first occurrence of `needle`."""
    seen = ""
    async with asyncio.timeout(timeout_s):
        while needle not in seen:
            frame = await ws.recv()
            assert isinstance(frame, bytes), f"unexpected text frame before output: {frame}"
            seen += frame.decode("utf-8", "replace")
    return seen


async def last_frame(ws: ClientConnection, timeout_s: float = 15) -> dict[str, Any]:
    """Skip output until the closing JSON frame."""
    async with asyncio.timeout(timeout_s):
        while True:
            frame = await ws.recv()
            if isinstance(frame, str):
                return dict(json.loads(frame))


async def audit_rows(settings: Settings, server_id: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        return list(
            await conn.fetch(
                "SELECT action, actor_user_id, target_type, target_id, details FROM audit_log"
                " WHERE action LIKE 'terminal.%' AND target_id = $1 ORDER BY id",
                str(server_id),
            )
        )
    finally:
        await conn.close()


def details(row: asyncpg.Record) -> dict[str, Any]:
    value = row["details"]
    return dict(value if isinstance(value, dict) else json.loads(value))


async def refused(server: str, server_id: int, token: str | None, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with open_terminal(server, server_id, token, **kwargs):
            pass
    return int(info.value.response.status_code)


async def test_owner_gets_a_shell_that_resizes_and_is_audited(
    server: str, api: dict[str, Api], settings: Settings, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("term")
    server_id = await add_server(api["user"], host)
    token = api["user"].persona.token
    async with open_terminal(server, server_id, token, "?cols=90&rows=30") as ws:
        await send_input(ws, "stty size; echo h''i\n")
        # The typed line echoes as "echo h''i"; only the command's output reads "hi".
        out = await read_until(ws, "\nhi\r\n")
        assert "30 90" in out
        await ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        await send_input(ws, "stty size\n")
        await read_until(ws, "40 120")
        await send_input(ws, "exit 3\n")
        end = await last_frame(ws)
    assert end == {"type": "exit", "status": 3, "reason": "exit"}
    rows = await audit_rows(settings, server_id)
    assert [r["action"] for r in rows] == ["terminal.open", "terminal.close"]
    assert {r["actor_user_id"] for r in rows} == {2}  # the `user` persona
    opened, closed = (details(r) for r in rows)
    assert opened["host"] == "127.0.0.1" and opened["port"] == host.port
    assert closed["exit_status"] == 3 and closed["reason"] == "exit"
    assert closed["duration_s"] > 0
    # The first connection pinned the host key, as for jobs.
    pinned = (await api["user"].get(f"/servers/{server_id}")).json()["host_key_fingerprint"]
    assert pinned == host.fingerprint


async def test_closing_the_socket_ends_the_shell(
    server: str, api: dict[str, Api], settings: Settings, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("term-close")
    server_id = await add_server(api["admin"], host)
    async with open_terminal(server, server_id, api["admin"].persona.token) as ws:
        await send_input(ws, "sleep 1234567 & echo started-$((6*7))\n")
        await read_until(ws, "started-42")
        async with asyncio.timeout(10):  # the background job may still be exec'ing sleep
            while not remote_leftovers("sleep 1234567"):
                await asyncio.sleep(0.05)
    # The SSH channel closes with the socket: the shell (and its job) are hung up.
    deadline = asyncio.get_running_loop().time() + 10
    while remote_leftovers("sleep 1234567"):
        assert asyncio.get_running_loop().time() < deadline, "the shell outlived the socket"
        await asyncio.sleep(0.1)
    async with asyncio.timeout(10):
        while len(rows := await audit_rows(settings, server_id)) < 2:
            await asyncio.sleep(0.05)
    assert rows[1]["action"] == "terminal.close"
    assert details(rows[1])["reason"] == "client_closed"


async def test_idle_terminal_is_closed(
    server: str,
    api: dict[str, Api],
    sshd_factory: HostFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(terminal_service, "IDLE_LIMIT_S", 0.5)
    host = sshd_factory("term-idle")
    server_id = await add_server(api["user"], host)
    async with open_terminal(server, server_id, api["user"].persona.token) as ws:
        end = await last_frame(ws)
    assert end == {"type": "exit", "status": None, "reason": "idle"}


async def test_viewers_others_and_strangers_are_refused(
    server: str, api: dict[str, Api], settings: Settings, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("term-refuse")
    server_id = await add_server(api["user"], host)
    assert await refused(server, server_id, api["viewer"].persona.token) == 403
    assert await refused(server, server_id, api["other"].persona.token) == 403
    assert await refused(server, server_id, None) == 403
    assert await refused(server, server_id, "crn_not-a-token") == 403
    assert await refused(server, 999_999, api["admin"].persona.token) == 403
    rows = await audit_rows(settings, server_id)
    assert [r["action"] for r in rows] == ["terminal.denied", "terminal.denied"]
    # Nothing was opened: no connection reached sshd, so no host key got pinned.
    server_body = (await api["user"].get(f"/servers/{server_id}")).json()
    assert server_body["host_key_fingerprint"] is None


async def test_session_cookie_needs_our_own_origin(
    server: str, api: dict[str, Api], client: httpx.AsyncClient, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("term-cookie")
    server_id = await add_server(api["user"], host)
    login = await client.post(
        "/api/v1/auth/login", json={"email": api["user"].persona.email, "password": PASSWORD}
    )
    cookie = str(login.cookies[SESSION_COOKIE])
    # Browsers send cookies on cross-site WebSocket handshakes: those are refused.
    for origin in ("http://evil.example", f"http://{server}.evil.example"):
        assert await refused(server, server_id, None, cookie=cookie, origin=origin) == 403
    async with open_terminal(
        server, server_id, None, cookie=cookie, origin=f"http://{server}"
    ) as ws:
        await send_input(ws, "echo cookie-$((40+2))\n")
        await read_until(ws, "cookie-42")


async def test_a_changed_host_key_is_refused(
    server: str, api: dict[str, Api], settings: Settings, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("term-mismatch")
    server_id = await add_server(api["user"], host, host_key_fingerprint="SHA256:" + "A" * 43)
    async with open_terminal(server, server_id, api["user"].persona.token) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=15))
    assert frame["type"] == "error" and frame["code"] == "host_key_mismatch"
    assert [r["action"] for r in await audit_rows(settings, server_id)] == ["terminal.failed"]
