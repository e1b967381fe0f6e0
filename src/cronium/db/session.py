"""The one session layer: engine and session factory built from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# What a database outage raises (a restart, a failover, a cut network: refused or missing
# socket, "the database system is shutting down", a connection closed under a query).
# Background loops catch these, log them and try again; anything else is a bug and stops
# the node loudly.
DB_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,  # also ConnectionError and TimeoutError
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # "cannot switch to state …; another operation is in progress": a pooled connection
    # the server dropped mid-query can come back from the pool still marked busy. Using it
    # raises this; releasing it then fails its reset and the pool replaces it.
    asyncpg.InternalClientError,
)


def async_url(url: str) -> URL:
    """Normalise any postgres URL to the asyncpg driver."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg")


def asyncpg_dsn(url: str) -> str:
    """The same URL in the plain form asyncpg.connect() understands (LISTEN, queue SQL)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, connect_timeout_s: float = 10.0) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={
            "timeout": connect_timeout_s,
            "server_settings": {"application_name": "cronium"},
        },
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction: committed on success, rolled back on error."""
    async with factory() as session, session.begin():
        yield session
