"""Shared fixtures: a real PostgreSQL, one migrated template per test worker, a fresh
database cloned from it for every test, and the four personas of the authorization rules.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cronium.app import create_app
from cronium.config import Settings, load_settings
from cronium.core import Core, open_core
from cronium.db.migrate import upgrade
from cronium.db.models import ApiToken, Role, User
from cronium.db.session import create_engine, session_factory
from cronium.engine.node import Node
from cronium.executors.registry import local_only
from cronium.runtime.socket import bind_runtime_socket
from cronium.security.passwords import hash_password
from cronium.security.tokens import display_prefix, hash_token

# Fixtures shared by several tiers (redis_server: a private Valkey stand-in).
pytest_plugins = ["tests.support.valkey"]

PG_ADMIN_URL = os.environ.get("CRONIUM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_ALL = os.environ.get("CRONIUM_TEST_REQUIRE_ALL") == "1"
PASSWORD = "correct-horse-battery"
TERMINAL_STATUSES = ("succeeded", "failed", "timed_out", "cancelled", "partial")


def pg_url(database: str) -> str:
    """The admin URL pointed at another database (works for TCP and Unix-socket URLs)."""
    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


async def _admin_exec(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Persona:
    name: str
    email: str
    role: Role
    token: str
    user_id: int = 0


PERSONAS = ("admin", "user", "other", "viewer")


@pytest.fixture(scope="session")
def personas() -> dict[str, Persona]:
    roles = {"admin": Role.admin, "user": Role.user, "other": Role.user, "viewer": Role.viewer}
    return {
        name: Persona(name, f"{name}@example.com", roles[name], "crn_" + secrets.token_urlsafe(24))
        for name in PERSONAS
    }


@pytest.fixture(scope="session")
async def template_db(personas: dict[str, Persona]) -> AsyncIterator[str]:
    """A database migrated to head with the personas in it; tests clone it."""
    name = f"cronium_tpl_{uuid.uuid4().hex[:10]}"
    try:
        await _admin_exec(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        if REQUIRE_ALL:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required: {exc}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} not reachable: {exc}")
    engine = create_engine(pg_url(name))
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        password_hash = hash_password(PASSWORD)
        async with sessions() as db, db.begin():
            for index, persona in enumerate(personas.values(), start=1):
                db.add(
                    User(
                        id=index,
                        email=persona.email,
                        password_hash=password_hash,
                        role=persona.role,
                    )
                )
                await db.flush()
                db.add(
                    ApiToken(
                        user_id=index,
                        name="test",
                        prefix=display_prefix(persona.token),
                        token_hash=hash_token(persona.token),
                    )
                )
            await db.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), 100)"))
    finally:
        await engine.dispose()
    yield name
    await _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(template_db: str) -> AsyncIterator[str]:
    name = f"cronium_t_{uuid.uuid4().hex[:12]}"
    await _admin_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield pg_url(name)
    await _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def runtime_socket() -> Iterator[Path]:
    """A short socket path (Unix socket paths are limited to ~100 bytes; tmp_path is long)."""
    folder = Path(tempfile.mkdtemp(prefix="crn-"))
    folder.chmod(0o755)
    yield folder / "runtime.sock"
    shutil.rmtree(folder, ignore_errors=True)


def make_settings(database_url: str, folder: Path, runtime_socket: Path) -> Settings:
    """An installation of its own: data under `folder`, fresh keys, its own socket."""
    return load_settings(
        CRONIUM_RUNTIME_SOCKET=str(runtime_socket),
        DATABASE_URL=database_url,
        CRONIUM_DATA_DIR=str(folder / "data"),
        CRONIUM_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        CRONIUM_SECRET_KEY=secrets.token_urlsafe(40),
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path, runtime_socket: Path) -> Settings:
    return make_settings(database_url, tmp_path, runtime_socket)


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    core = await open_core(settings, run_migrations=False)
    yield core
    await core.close()


@pytest.fixture
async def client(settings: Settings, core: Core) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous client against the app (no server socket: ASGI in process)."""
    app = create_app(settings, core=core)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


class Api:
    """A persona's view of the API: bearer-authenticated JSON calls."""

    def __init__(self, client: httpx.AsyncClient, persona: Persona) -> None:
        self.client = client
        self.persona = persona
        self.headers = {"Authorization": f"Bearer {persona.token}"}

    async def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {**self.headers, **dict(kwargs.pop("headers", {}) or {})}  # type: ignore[call-overload]
        return await self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)  # type: ignore[arg-type]

    async def get(self, path: str, **kw: object) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: object) -> httpx.Response:
        return await self.request("POST", path, **kw)

    async def patch(self, path: str, **kw: object) -> httpx.Response:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: object) -> httpx.Response:
        return await self.request("DELETE", path, **kw)


@pytest.fixture
def api(client: httpx.AsyncClient, personas: dict[str, Persona]) -> dict[str, Api]:
    """`api["admin"]`, `api["user"]`, `api["other"]` (a second user), `api["viewer"]`."""
    return {name: Api(client, p) for name, p in personas.items()}


@pytest.fixture
def user(api: dict[str, Api]) -> Api:
    """The `user` persona's API: the one most tests act as."""
    return api["user"]


@pytest.fixture
async def runtime_server(settings: Settings, core: Core) -> AsyncIterator[uvicorn.Server]:
    """The app served on the Runtime API socket, as a worker node serves it."""
    app = create_app(settings, core=core)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    sock = bind_runtime_socket(settings.runtime_socket_path)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield server
    server.should_exit = True
    await asyncio.wait_for(task, timeout=15)
    sock.close()


@pytest.fixture
async def node(core: Core, runtime_server: uvicorn.Server) -> AsyncIterator[Node]:
    """A running node (api, scheduler, worker) with the local executor and Runtime API socket."""
    running = Node(core, frozenset({"api", "scheduler", "worker"}), local_only())
    task = asyncio.create_task(running.run())
    await asyncio.wait_for(running.ready.wait(), timeout=10)
    yield running
    running.stop()
    await asyncio.wait_for(task, timeout=30)


async def wait_for_status(
    api: Api,
    execution_id: int,
    statuses: tuple[str, ...] = TERMINAL_STATUSES,
    timeout_s: float = 20,
) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = (await api.get(f"/executions/{execution_id}")).json()
        if body["status"] in statuses:
            return dict(body)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"execution {execution_id} still {body['status']} after {timeout_s} s: {body}"
            )
        await asyncio.sleep(0.05)
