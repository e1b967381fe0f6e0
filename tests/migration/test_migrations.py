"""Migrations on a brand-new database: they match the models, go down and up, and two
nodes migrating at once do not trip over each other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cronium.db.migrate import alembic_config, current_revision, head_revision, upgrade
from cronium.db.models import Base
from cronium.db.session import create_engine
from tests.conftest import _admin_exec, pg_url


@pytest.fixture
async def empty_db() -> AsyncIterator[str]:
    """A brand-new empty database (not cloned from the migrated template)."""
    name = f"cronium_mig_{uuid.uuid4().hex[:12]}"
    await _admin_exec(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
    await _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(empty_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(empty_db)
    yield engine
    await engine.dispose()


def _diff(sync_conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(
        sync_conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "target_metadata": Base.metadata,
        },
    )
    return list(compare_metadata(ctx, Base.metadata))


async def _pending_diff(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(_diff)


async def _alembic(engine: AsyncEngine, action: str, revision: str) -> None:
    """Run `alembic upgrade|downgrade REV` through the command API on our own connection."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def run(sync_conn: Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        getattr(command, action)(cfg, revision)

    async with engine.connect() as conn:
        await conn.run_sync(run)
        await conn.commit()


async def _schema(engine: AsyncEngine) -> tuple[set[str], set[str]]:
    """(tables, enum types) in the public schema."""
    async with engine.connect() as conn:
        tables = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        types = await conn.execute(
            text(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype = 'e'"
            )
        )
        return set(tables.scalars()), set(types.scalars())


async def _advisory_locks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        sql = text(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
        )
        return int(await conn.scalar(sql) or 0)


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/unused"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def test_migrations_build_exactly_the_schema_the_models_describe(engine: AsyncEngine) -> None:
    await upgrade(engine)
    diff = await _pending_diff(engine)
    assert diff == [], "models and migrations disagree; write a migration for:\n" + "\n".join(
        map(repr, diff)
    )
    assert await current_revision(engine) == head_revision()
    tables, enums = await _schema(engine)
    assert set(Base.metadata.tables) | {"alembic_version"} == tables
    assert "server_auth_type" in enums


async def test_there_is_a_single_head_and_it_is_current_after_upgrade(engine: AsyncEngine) -> None:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/unused"))
    assert len(script.get_heads()) == 1, "branched migration history: merge the heads"
    assert await current_revision(engine) is None
    await upgrade(engine)
    assert await current_revision(engine) == head_revision() == script.get_current_head()
    await upgrade(engine)  # a second start finds nothing to do
    assert await current_revision(engine) == head_revision()


async def test_downgrade_to_base_then_upgrade_again(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await _alembic(engine, "downgrade", "base")
    assert await current_revision(engine) is None
    tables, enums = await _schema(engine)
    assert tables <= {"alembic_version"}, f"downgrade left tables behind: {tables}"
    assert enums == set(), f"downgrade left enum types behind: {enums}"

    await _alembic(engine, "upgrade", "head")
    assert await current_revision(engine) == head_revision()
    assert await _pending_diff(engine) == []


async def test_every_revision_steps_down_and_up_again(engine: AsyncEngine) -> None:
    revisions = _revisions()
    assert revisions[-1] == head_revision()
    for revision in revisions:
        await _alembic(engine, "upgrade", revision)
        await _alembic(engine, "downgrade", "-1")
        await _alembic(engine, "upgrade", revision)
        assert await current_revision(engine) == revision
    assert await _pending_diff(engine) == []


async def test_two_nodes_migrating_at_once_both_succeed(empty_db: str) -> None:
    engines = [create_engine(empty_db) for _ in range(3)]
    try:
        await asyncio.wait_for(asyncio.gather(*(upgrade(e) for e in engines)), timeout=90)
        for engine in engines:
            assert await current_revision(engine) == head_revision()
        assert await _pending_diff(engines[0]) == []
        assert await _advisory_locks(engines[0]) == 0
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_failed_migration_reports_its_own_error_and_releases_the_lock(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:  # an object in the way of the first migration
        await conn.execute(text("CREATE TABLE users (id int)"))
    with pytest.raises(DBAPIError, match="already exists"):
        await upgrade(engine)
    assert await _advisory_locks(engine) == 0
    assert await current_revision(engine) is None
    tables, _ = await _schema(engine)
    assert tables == {"users"}, "a failed upgrade must roll back as a whole"

    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE users"))
    await asyncio.wait_for(upgrade(engine), timeout=60)
    assert await current_revision(engine) == head_revision()
    assert await _advisory_locks(engine) == 0
