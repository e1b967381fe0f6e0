"""Run Alembic migrations programmatically (serve migrates on start; `cronium migrate`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/unused"))
    head = script.get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine) -> None:
    """Upgrade the database behind `engine` to head, serialised by an advisory lock.

    Two nodes starting together must not run the same migration twice; the lock makes
    the second wait and then find nothing to do.
    """
    url = engine.url.render_as_string(hide_password=False)
    cfg = alembic_config(url)
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT pg_advisory_lock(7465301)")
        # The session lock outlives this commit; Alembic then owns its transactions
        # (a migration may need an autocommit block, e.g. to add an enum value).
        await conn.commit()
        try:

            def _run(sync_conn: object) -> None:
                cfg.attributes["connection"] = sync_conn
                command.upgrade(cfg, "head")

            await conn.run_sync(_run)
            await conn.commit()
        finally:
            await conn.exec_driver_sql("SELECT pg_advisory_unlock(7465301)")
            await conn.commit()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:

        def _get(sync_conn: object) -> str | None:
            ctx = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
            return ctx.get_current_revision()

        return await conn.run_sync(_get)


def upgrade_sync(engine: AsyncEngine) -> None:
    asyncio.run(upgrade(engine))
