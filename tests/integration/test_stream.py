"""WS /api/v1/executions/{id}/stream against a real server socket (uvicorn in process).

Refusal: the endpoint closes the socket with 1008 *before* accepting it, which the ASGI
server turns into an HTTP 403 answer to the handshake, so a client sees the upgrade refused
with status 403 and never gets an open socket (websockets raises InvalidStatus). The same
403 answers an anonymous client, a bad token, a cross-origin cookie and another user's
execution (which is reported as "not found", so ids reveal nothing). Viewers read every
object, so a viewer may subscribe to anyone's execution; so may an admin.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from cronium.api.deps import SESSION_COOKIE
from cronium.api.routers import stream as stream_module
from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core
from cronium.db.session import asyncpg_dsn
from cronium.engine import queue
from cronium.engine.node import Node
from tests.conftest import PASSWORD, Api, Persona, wait_for_status

LOG_KEYS = {"type", "seq", "stream", "ts", "target", "line"}


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
        # No keepalive pings: a client stalled on purpose must not be dropped mid-test.
        ws_ping_interval=None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=15)


def open_stream(
    server: str,
    execution_id: int,
    *,
    token: str | None = None,
    cookie: str | None = None,
    origin: str | None = None,
    after: int | None = None,
    **kwargs: Any,
) -> connect:
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    query = "" if after is None else f"?after={after}"
    return connect(
        f"ws://{server}/api/v1/executions/{execution_id}/stream{query}",
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        proxy=None,
        open_timeout=10,
        **kwargs,
    )


async def receive_all(ws: ClientConnection, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Every message up to and including "end"; the server then closes normally."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while True:
            message = json.loads(await ws.recv())
            messages.append(message)
            if message["type"] == "end":
                break
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
    return messages


async def refused(server: str, execution_id: int, **kwargs: Any) -> int:
    """The handshake's HTTP status when the server refuses the upgrade."""
    with pytest.raises(InvalidStatus) as info:
        async with open_stream(server, execution_id, **kwargs):
            pass
    return int(info.value.response.status_code)


async def create_event(api: Api, content: str, **fields: object) -> int:
    body = {"name": "e", "language": "bash", "content": content, **fields}
    resp = await api.post("/events", json=body)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def run(api: Api, event_id: int) -> int:
    resp = await api.post(f"/events/{event_id}/run")
    assert resp.status_code == 202, resp.text
    return int(resp.json()["execution_id"])


async def login(client: httpx.AsyncClient, persona: Persona) -> str:
    resp = await client.post(
        "/api/v1/auth/login", json={"email": persona.email, "password": PASSWORD}
    )
    assert resp.status_code == 200, resp.text
    return str(resp.cookies[SESSION_COOKIE])


def logs_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "log"]


async def finished_run(api: Api, content: str = "echo one; echo two >&2") -> int:
    execution_id = await run(api, await create_event(api, content))
    assert (await wait_for_status(api, execution_id))["status"] == "succeeded"
    return execution_id


# -- messages -------------------------------------------------------------------------------


async def test_a_live_subscriber_gets_log_status_and_end_messages(
    server: str, api: dict[str, Api], personas: dict[str, Persona], node: Node
) -> None:
    script = "for i in 1 2 3 4 5; do echo line-$i; sleep 0.1; done; echo oops >&2"
    event_id = await create_event(api["user"], script)
    execution_id = await run(api["user"], event_id)
    async with open_stream(server, execution_id, token=personas["user"].token) as ws:
        messages = await receive_all(ws)

    logs = logs_of(messages)
    for message in logs:
        assert set(message) == LOG_KEYS, message
        assert message["target"] == "local"
        assert message["stream"] in ("stdout", "stderr", "system")
        assert isinstance(message["line"], str)
        assert datetime.fromisoformat(message["ts"]).tzinfo is not None
    assert [m["seq"] for m in logs] == list(range(1, len(logs) + 1))
    output = [(m["stream"], m["line"]) for m in logs if m["stream"] != "system"]
    assert output == [("stdout", f"line-{i}") for i in range(1, 6)] + [("stderr", "oops")]

    statuses = [m for m in messages if m["type"] == "status"]
    assert all(set(m) == {"type", "status"} for m in statuses)
    assert statuses[-1] == {"type": "status", "status": "succeeded"}
    assert "running" in [m["status"] for m in statuses]
    assert messages[-1] == {"type": "end", "status": "succeeded"}
    # The run was followed live: some lines came before the final status.
    final_status_at = messages.index(statuses[-1])
    assert any(messages.index(m) < final_status_at for m in logs)
    # What the socket sent is exactly what the API stores.
    stored = (await api["user"].get(f"/executions/{execution_id}/logs")).json()["items"]
    assert [(m["seq"], m["line"]) for m in logs] == [(s["seq"], s["line"]) for s in stored]


async def test_a_finished_execution_replays_and_ends(
    server: str, api: dict[str, Api], personas: dict[str, Persona], node: Node
) -> None:
    execution_id = await finished_run(api["user"])
    async with open_stream(server, execution_id, token=personas["user"].token) as ws:
        messages = await receive_all(ws)
    assert [(m["stream"], m["line"]) for m in logs_of(messages) if m["stream"] != "system"] == [
        ("stdout", "one"),
        ("stderr", "two"),
    ]
    assert messages[-2:] == [
        {"type": "status", "status": "succeeded"},
        {"type": "end", "status": "succeeded"},
    ]


# -- resume ---------------------------------------------------------------------------------


async def test_reconnecting_with_after_resumes_without_gap_or_duplicate(
    server: str, api: dict[str, Api], personas: dict[str, Persona], node: Node
) -> None:
    script = "for i in $(seq 1 40); do echo line-$i; sleep 0.03; done"
    execution_id = await run(api["user"], await create_event(api["user"], script))
    token = personas["user"].token

    first: list[dict[str, Any]] = []
    async with open_stream(server, execution_id, token=token) as ws:
        async with asyncio.timeout(20):
            while len(first) < 10:
                message = json.loads(await ws.recv())
                if message["type"] == "log":
                    first.append(message)
    last_seen = first[-1]["seq"]
    await asyncio.sleep(0.3)  # the job goes on while nobody watches

    async with open_stream(server, execution_id, token=token, after=last_seen) as ws:
        rest = logs_of(await receive_all(ws))

    seqs = [m["seq"] for m in first + rest]
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or a duplicate"
    stored = (await api["user"].get(f"/executions/{execution_id}/logs")).json()["items"]
    assert [(m["seq"], m["line"]) for m in first + rest] == [(s["seq"], s["line"]) for s in stored]
    assert [m["line"] for m in first + rest if m["stream"] == "stdout"] == [
        f"line-{i}" for i in range(1, 41)
    ]

    # After the end, `after` still selects exactly the rest.
    async with open_stream(server, execution_id, token=token, after=len(seqs) - 3) as ws:
        tail = await receive_all(ws)
    assert [m["seq"] for m in logs_of(tail)] == seqs[-3:]
    assert tail[-1] == {"type": "end", "status": "succeeded"}


# -- a slow client --------------------------------------------------------------------------

NOISY = (
    "import sys\n"
    "line = 'y' * 99 + '\\n'\n"
    "for _ in range(60):\n"
    "    sys.stdout.write(line * 1000)  # 6 MiB in all, no pause\n"
)


async def duration_s(api: Api, execution_id: int) -> float:
    done = await wait_for_status(api, execution_id, timeout_s=60)
    assert done["status"] == "succeeded", f"{done['status']}: {done.get('jobs')}"
    started = datetime.fromisoformat(str(done["started_at"]))
    finished = datetime.fromisoformat(str(done["finished_at"]))
    return (finished - started).total_seconds()


def stalling_socket(server: str) -> socket.socket:
    """A connected client socket with a tiny receive buffer (no kernel autotuning), so a
    client that stops reading pushes back on the server after a few kilobytes."""
    host, port = server.split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def test_a_client_that_never_reads_does_not_slow_the_job(
    server: str, core: Core, api: dict[str, Api], personas: dict[str, Persona], node: Node
) -> None:
    event_id = await create_event(api["user"], NOISY, language="python")
    # Two runs side by side, under the same load: one watched by a stalled client.
    watched = await run(api["user"], event_id)
    sock = await asyncio.to_thread(stalling_socket, server)
    token = personas["user"].token
    # The client library stops reading after 4 queued frames, the socket buffers are small,
    # and without compression the ~9 MB of messages cannot hide in the server's buffers.
    async with open_stream(
        server, watched, token=token, sock=sock, max_queue=4, ping_interval=None, compression=None
    ) as ws:
        unwatched = await run(api["user"], event_id)
        watched_s = await duration_s(api["user"], watched)
        unwatched_s = await duration_s(api["user"], unwatched)
        print(f"\nwith a stalled subscriber {watched_s:.2f} s, without {unwatched_s:.2f} s")
        assert watched_s < unwatched_s * 1.5 + 1.0
        # The server is still stuck sending to it (so the test did stall it).
        await asyncio.sleep(0.5)
        assert core.hub.watched == 1
        # Once it reads again it still gets everything, in order.
        messages = await receive_all(ws, timeout_s=90)
    seqs = [m["seq"] for m in logs_of(messages)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert sum(1 for m in logs_of(messages) if m["stream"] == "stdout") == 60_000
    assert messages[-1] == {"type": "end", "status": "succeeded"}
    assert core.hub.watched == 0


# -- who may subscribe ----------------------------------------------------------------------


async def test_bearer_token_of_the_owner_an_admin_or_a_viewer_is_accepted(
    server: str, api: dict[str, Api], personas: dict[str, Persona], node: Node
) -> None:
    execution_id = await finished_run(api["user"])
    for name in ("user", "admin", "viewer"):
        async with open_stream(server, execution_id, token=personas[name].token) as ws:
            assert (await receive_all(ws))[-1]["type"] == "end", name


async def test_another_user_is_refused(
    server: str, api: dict[str, Api], personas: dict[str, Persona], node: Node
) -> None:
    execution_id = await finished_run(api["user"])
    assert await refused(server, execution_id, token=personas["other"].token) == 403
    # Indistinguishable from an execution that does not exist.
    assert await refused(server, 987654, token=personas["other"].token) == 403


async def test_anonymous_and_bad_tokens_are_refused(
    server: str, api: dict[str, Api], node: Node
) -> None:
    execution_id = await finished_run(api["user"])
    assert await refused(server, execution_id) == 403
    assert await refused(server, execution_id, token="crn_not-a-real-token") == 403
    assert await refused(server, execution_id, cookie="not-a-session") == 403


async def test_session_cookie_from_our_own_origin_is_accepted(
    server: str,
    client: httpx.AsyncClient,
    api: dict[str, Api],
    personas: dict[str, Persona],
    node: Node,
) -> None:
    execution_id = await finished_run(api["user"])
    cookie = await login(client, personas["user"])
    async with open_stream(server, execution_id, cookie=cookie, origin=f"http://{server}") as ws:
        assert (await receive_all(ws))[-1] == {"type": "end", "status": "succeeded"}
    # A non-browser client sends no Origin at all: accepted too.
    async with open_stream(server, execution_id, cookie=cookie) as ws:
        assert (await receive_all(ws))[-1]["type"] == "end"
    # The cookie of another user does not open the owner's execution.
    other = await login(client, personas["other"])
    assert await refused(server, execution_id, cookie=other, origin=f"http://{server}") == 403


async def test_session_cookie_on_a_cross_origin_handshake_is_refused(
    server: str,
    client: httpx.AsyncClient,
    api: dict[str, Api],
    personas: dict[str, Persona],
    node: Node,
) -> None:
    execution_id = await finished_run(api["user"])
    cookie = await login(client, personas["user"])
    for origin in ("http://evil.example", f"https://{server}.evil.example", "null"):
        assert await refused(server, execution_id, cookie=cookie, origin=origin) == 403, origin
    # A bearer token is not sent automatically by browsers: no Origin check for it.
    token = personas["user"].token
    async with open_stream(server, execution_id, token=token, origin="http://elsewhere") as ws:
        assert (await receive_all(ws))[-1]["type"] == "end"


# -- across nodes ---------------------------------------------------------------------------


async def test_lines_from_another_node_arrive_through_postgres_notify(
    server: str,
    settings: Settings,
    core: Core,
    api: dict[str, Api],
    personas: dict[str, Persona],
    node: Node,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No periodic re-read during this test: only a NOTIFY (via this node's listener and
    # the hub) can wake the subscriber within the deadlines below.
    monkeypatch.setattr(stream_module, "IDLE_RECHECK_S", 60.0)
    event_id = await create_event(api["user"], "echo unused")
    other_node = await asyncpg.connect(asyncpg_dsn(str(settings.database_url)))
    try:
        # An execution another node is running: no job here, so nothing local publishes.
        execution_id = await other_node.fetchval(
            """INSERT INTO executions (event_id, owner_id, status, trigger, started_at)
               SELECT id, owner_id, 'running', 'manual', now() FROM events WHERE id = $1
               RETURNING id""",
            event_id,
        )
        async with open_stream(server, execution_id, token=personas["user"].token) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first == {"type": "status", "status": "running"}
            assert core.hub.watched == 1

            for batch in (["from", "another"], ["node"]):
                async with other_node.transaction():
                    seq = await queue.reserve_log_seq(other_node, execution_id, len(batch))
                    now = datetime.now(UTC)
                    rows = [(seq + i, "stdout", now, text) for i, text in enumerate(batch)]
                    await queue.append_logs(other_node, execution_id, None, "remote-1", rows)
                for expected in rows:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    assert message == {
                        "type": "log",
                        "seq": expected[0],
                        "stream": "stdout",
                        "ts": message["ts"],
                        "target": "remote-1",
                        "line": expected[3],
                    }

            await other_node.execute(
                "UPDATE executions SET status = 'succeeded', finished_at = now() WHERE id = $1",
                execution_id,
            )
            await other_node.execute(
                "SELECT pg_notify($1, $2)", queue.STATUS_CHANNEL, str(execution_id)
            )
            rest = await receive_all(ws, timeout_s=5)
        assert rest == [
            {"type": "status", "status": "succeeded"},
            {"type": "end", "status": "succeeded"},
        ]
    finally:
        await other_node.close()
    assert core.hub.watched == 0


async def test_a_subscriber_of_a_deleted_execution_gets_an_end(
    server: str, core: Core, api: dict[str, Api], personas: dict[str, Persona], node: Node
) -> None:
    event_id = await create_event(api["user"], "echo unused")
    async with core.db.acquire() as conn:
        execution_id = await conn.fetchval(
            """INSERT INTO executions (event_id, owner_id, status, trigger)
               SELECT id, owner_id, 'queued', 'manual' FROM events WHERE id = $1 RETURNING id""",
            event_id,
        )
    async with open_stream(server, execution_id, token=personas["user"].token) as ws:
        assert json.loads(await ws.recv()) == {"type": "status", "status": "queued"}
        async with core.db.acquire() as conn:
            await conn.execute("DELETE FROM executions WHERE id = $1", execution_id)
        core.hub.publish(execution_id)
        assert await receive_all(ws, timeout_s=5) == [{"type": "end", "status": "deleted"}]
