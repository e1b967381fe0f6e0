"""A Cronium of its own for the leak corpus, shared by a whole test module: a database
cloned from the template, a node with the local executor and the Runtime API socket, the
app on a real TCP port (REST, WebSocket stream, pages, access log), a loopback receiver
for HTTP events and tool actions, and the server's own log records, captured at the
default level (info) with the log protection `cronium serve` applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from websockets.asyncio.client import connect

from cronium.app import create_app
from cronium.core import Core, open_core
from cronium.engine.node import Node
from cronium.executors.registry import local_only
from cronium.logs.server_log import URL_LOGGERS, HideWebhookKeys, protect_server_log
from cronium.runtime.socket import bind_runtime_socket
from tests.conftest import PASSWORD, Api, Persona, _admin_exec, make_settings, pg_url
from tests.support.tool_receivers import HttpReceiver, http_receiver

# The loopback receiver (the outside world: a Slack, an API) serves its paths under this;
# its access lines, in the same process, are its log, not Cronium's.
RECEIVER_PREFIX = "/ext/"


class Records(logging.Handler):
    """Every log record of the process, formatted as `cronium serve` would print it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        path = args[2] if record.name == "uvicorn.access" and len(args) > 2 else ""
        if isinstance(path, str) and path.startswith(RECEIVER_PREFIX):
            return
        self.lines.append(self.format(record))


@dataclass
class Env:
    core: Core
    api: Api
    web: httpx.AsyncClient  # signed in with a session cookie, for the pages
    server: str  # host:port
    token: str  # the user persona's API token
    receiver: HttpReceiver
    records: Records
    folder: Path
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _database(template_db: str) -> AsyncIterator[str]:
    name = f"cronium_t_{uuid.uuid4().hex[:12]}"
    await _admin_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        yield pg_url(name)
    finally:
        await _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def _served(server: uvicorn.Server, **kwargs: Any) -> AsyncIterator[uvicorn.Server]:
    task = asyncio.create_task(server.serve(**kwargs))
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@contextlib.asynccontextmanager
async def _server_log() -> AsyncIterator[Records]:
    """Capture the process's log at info, as `cronium serve` runs by default; restore after."""
    records = Records()
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    touched = [root, access, *(logging.getLogger(n) for n in URL_LOGGERS)]
    levels = [logger.level for logger in touched]
    # uvicorn's own logging setup stops access records from reaching the root logger.
    for logger in (root, access):
        logger.addHandler(records)
        logger.setLevel(logging.INFO)
    protect_server_log("info")
    try:
        yield records
    finally:
        for logger in (root, access):
            logger.removeHandler(records)
        for logger, level in zip(touched, levels, strict=True):
            logger.setLevel(level)
        for f in [f for f in access.filters if isinstance(f, HideWebhookKeys)]:
            access.removeFilter(f)


def _socket_dir() -> Path:
    """A short folder (Unix socket paths are limited to ~100 bytes; tmp paths are long)."""
    folder = Path(tempfile.mkdtemp(prefix="crn-"))
    folder.chmod(0o755)
    return folder


@contextlib.asynccontextmanager
async def environment(template_db: str, persona: Persona, folder: Path) -> AsyncIterator[Env]:
    socket_dir = _socket_dir()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, socket_dir, ignore_errors=True)
        database_url = await stack.enter_async_context(_database(template_db))
        settings = make_settings(database_url, folder, socket_dir / "runtime.sock")
        core = await open_core(settings, run_migrations=False)
        stack.push_async_callback(core.close)
        runtime = uvicorn.Server(
            uvicorn.Config(create_app(settings, core=core), log_level="warning", lifespan="off")
        )
        http = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, core=core),
                host="127.0.0.1",
                port=0,
                lifespan="off",
                log_config=None,  # records propagate to the root logger, like serve's
                log_level="info",
                access_log=True,
            )
        )
        sock = bind_runtime_socket(settings.runtime_socket_path)
        stack.callback(sock.close)
        await stack.enter_async_context(_served(runtime, sockets=[sock]))
        await stack.enter_async_context(_served(http))
        server = f"127.0.0.1:{http.servers[0].sockets[0].getsockname()[1]}"
        node = Node(core, frozenset({"api", "scheduler", "worker"}), local_only())
        node_task = asyncio.create_task(node.run())
        await asyncio.wait_for(node.ready.wait(), timeout=10)

        async def stop_node() -> None:
            node.stop()
            await asyncio.wait_for(node_task, timeout=30)

        stack.push_async_callback(stop_node)
        receiver = await stack.enter_async_context(http_receiver())
        # After every uvicorn server's logging setup (done as each starts serving), which
        # replaces the access log's handlers.
        records = await stack.enter_async_context(_server_log())
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://{server}", timeout=30)
        )
        web = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://{server}", timeout=30)
        )
        signed_in = await web.post(
            "/api/v1/auth/login", json={"email": persona.email, "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        yield Env(core, Api(client, persona), web, server, persona.token, receiver, records, folder)


async def follow(server: str, token: str, execution_id: int) -> list[dict[str, Any]]:
    """The live stream of an execution, from its start to its "end" message."""
    messages: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(90),
        connect(
            f"ws://{server}/api/v1/executions/{execution_id}/stream",
            additional_headers={"Authorization": f"Bearer {token}"},
            proxy=None,
            open_timeout=10,
        ) as ws,
    ):
        async for raw in ws:
            message = json.loads(raw)
            messages.append(message)
            if message["type"] == "end":
                break
    return messages


async def all_logs(api: Api, execution_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = (await api.get(f"/executions/{execution_id}/logs?after={after}&limit=10000")).json()
        if not page["items"]:
            return items
        items += page["items"]
        after = page["next_after"]


async def wait_for_line(api: Api, execution_id: int, needle: str, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not any(needle in item["line"] for item in await all_logs(api, execution_id)):
            await asyncio.sleep(0.1)


async def stored_text(core: Core) -> list[str]:
    """What the database keeps in clear that a run produced: lines, outputs, errors."""
    queries = [
        "SELECT line FROM log_lines",
        "SELECT concat_ws(' ', output::text, error) FROM jobs",
        "SELECT concat_ws(' ', output::text, error) FROM executions",
        "SELECT concat_ws(' ', result::text, error) FROM action_deliveries",
        "SELECT concat_ws(' ', output::text, error) FROM workflow_node_runs",
        "SELECT concat_ws(' ', error) FROM workflow_runs",
    ]
    async with core.db.acquire() as conn:
        return [str(row[0]) for query in queries for row in await conn.fetch(query)]
