"""The process-wide state every role shares: settings, database, cipher, limits.

Opened once by `cronium serve` (or the app lifespan in tests) and closed on shutdown.
Opening does the slow, failure-prone work up front so a bad setting stops the process
with one clear line: embedded PostgreSQL, the connection check and migrations.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cronium.config import Settings
from cronium.db import migrate
from cronium.db.models import Role, User
from cronium.db.session import asyncpg_dsn, create_engine, session_factory
from cronium.errors import ConfigError
from cronium.executors.ssh_connect import SshPool
from cronium.logs.capture import Masker
from cronium.logs.hub import LiveHub, ValkeyHub
from cronium.runtime.tokens import CallerCache
from cronium.security.crypto import Cipher, load_or_create_key
from cronium.security.passwords import hash_password
from cronium.services.ratelimit import MemoryRateLimiter, RateLimiter, ValkeyRateLimiter
from cronium.services.valkey import ValkeyLink

log = logging.getLogger("cronium.core")

SECRET_KEY_FILE = "secret.key"
POOL_CLOSE_TIMEOUT_S = 10.0


@dataclass
class Core:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cipher: Cipher
    secret_key: str
    pool: asyncpg.Pool | None = None
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    hub: LiveHub = field(default_factory=LiveHub)
    # Node-local by nature (tokens of jobs on this node's socket): stays in memory.
    runtime_callers: CallerCache = field(default_factory=CallerCache)
    # The masker of each job running on this node, by job id: a secret a script writes
    # through the Runtime API joins its job's masker at once.
    job_maskers: dict[int, Masker] = field(default_factory=dict)
    valkey: ValkeyLink = field(default_factory=lambda: ValkeyLink(None))
    executor_mode: str | None = None
    executor_warning: str | None = None
    installation_id: str = (
        ""  # shared by every node on this database  # "container" or "local", once the node chose
    )
    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{secrets.token_hex(4)}")
    embedded: object | None = None
    _ssh: SshPool | None = field(default=None, repr=False)

    @property
    def ssh(self) -> SshPool:
        """SSH connections, job slots and breakers per server, shared by this process."""
        if self._ssh is None:
            self._ssh = SshPool.from_settings(self.settings, self._record_host_key)
        return self._ssh

    async def _record_host_key(self, server_id: int, key: str, fingerprint: str) -> None:
        """Trust on first use: pin the key a server showed, unless one is pinned already."""
        async with self.db.acquire() as conn:
            await conn.execute(
                "UPDATE servers SET host_key = $2, host_key_fingerprint = $3"
                " WHERE id = $1 AND host_key IS NULL",
                server_id,
                key,
                fingerprint,
            )

    @property
    def db(self) -> asyncpg.Pool:
        """The raw asyncpg pool the engine uses for queue SQL, logs and LISTEN."""
        assert self.pool is not None, "core opened without a pool"
        return self.pool

    async def use_valkey(self) -> None:
        """With VALKEY_URL: shared rate limits and pub/sub, in-process fallbacks when down."""
        if not self.settings.valkey_url:
            return
        self.valkey = ValkeyLink(self.settings.valkey_url)
        self.limiter = ValkeyRateLimiter(self.valkey)
        self.hub = ValkeyHub(self.valkey, self.node_id)
        await self.valkey.start()
        await self.hub.start()

    async def close(self) -> None:
        await self.hub.close()
        await self.valkey.close()
        if self._ssh is not None:
            await self._ssh.aclose()
        if self.pool is not None:
            # close() waits for every connection to come back; one lost mid-query during a
            # database outage never does, so give up after a while and drop them all.
            try:
                await asyncio.wait_for(self.pool.close(), POOL_CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("database pool did not close in %g s; terminated", POOL_CLOSE_TIMEOUT_S)
                self.pool.terminate()
        await self.engine.dispose()
        stop = getattr(self.embedded, "stop", None)
        if stop is not None:
            await asyncio.to_thread(stop)


async def open_core(settings: Settings, *, run_migrations: bool = True) -> Core:
    """Connect (starting embedded PostgreSQL when no DATABASE_URL), migrate, bootstrap."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded = None
    url = settings.database_url
    if url is None:
        from cronium.db.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(settings.data_dir)
        url = await asyncio.to_thread(embedded.start)
        log.info("embedded PostgreSQL running in %s", settings.data_dir / "postgres")
    engine = create_engine(url, connect_timeout_s=settings.db_connect_timeout_s)
    try:
        await check_database(engine, url)
        if run_migrations:
            await migrate.upgrade(engine)
        cipher = Cipher(load_or_create_key(settings))
        pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=1,
            max_size=max(4, settings.worker_concurrency + 4),
            timeout=settings.db_connect_timeout_s,
            server_settings={"application_name": "cronium-engine"},
            init=_init_connection,
            reset=_keep_session,
        )
        core = Core(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            cipher=cipher,
            secret_key=settings.secret_key or _load_or_create_secret_key(settings.data_dir),
            embedded=embedded,
            pool=pool,
        )
        if run_migrations:
            await bootstrap_admin(core)
        core.installation_id = await _installation_id(pool)
        await core.use_valkey()
        return core
    except BaseException:
        await engine.dispose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise


async def _installation_id(pool: asyncpg.Pool) -> str:
    """A random id stored once per database: tells this installation's jobs from others'."""
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO settings (key, value)
               VALUES ('installation', jsonb_build_object('id', gen_random_uuid()::text))
               ON CONFLICT (key) DO NOTHING"""
        )
        found: str = await conn.fetchval(
            "SELECT value->>'id' FROM settings WHERE key = 'installation'"
        )
    return found


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: pool connections hold no session state
    (LISTEN and the leader lock use their own connections), and it cost a round trip a use."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    """JSON columns come and go as Python values on the engine's connections."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def check_database(engine: AsyncEngine, url: str) -> None:
    """Fail fast with one line naming the database we could not reach, and why."""
    target = make_url(url)
    where = f"{target.host or 'local socket'}:{target.port or 5432}/{target.database}"
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except (OSError, TimeoutError, OperationalError, DBAPIError) as exc:
        reason = _short_reason(exc)
        raise ConfigError(f"DATABASE_URL: cannot connect to {where}: {reason}") from None


def _short_reason(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return text.removeprefix("(").split(") ", 1)[-1] if text.startswith("(") else text


def _load_or_create_secret_key(data_dir: Path) -> str:
    path = data_dir / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


async def bootstrap_admin(core: Core) -> None:
    """Create the admin from CRONIUM_ADMIN_EMAIL/PASSWORD when the instance has no user yet."""
    email, password = core.settings.admin_email, core.settings.admin_password
    async with core.sessions() as session, session.begin():
        users = await session.scalar(select(func.count()).select_from(User))
        if users:
            return
        if not (email and password):
            log.warning(
                "no user exists yet: set CRONIUM_ADMIN_EMAIL and CRONIUM_ADMIN_PASSWORD, "
                "or run `cronium create-user --role admin`"
            )
            return
        # Serialise concurrent first starts of several nodes.
        await session.execute(select(func.pg_advisory_xact_lock(7465302)))
        if await session.scalar(select(func.count()).select_from(User)):
            return
        session.add(User(email=email, password_hash=hash_password(password), role=Role.admin))
        log.info("created bootstrap admin %s", email)
