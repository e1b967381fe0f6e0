"""Database side of the Runtime API: every function is scoped by the caller's job."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from cronium.core import Core
from cronium.errors import ValidationFailed
from cronium.runtime.tokens import RuntimeCaller

VARIABLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")


def check_key(key: str) -> None:
    if not VARIABLE_KEY.match(key):
        raise ValidationFailed(
            f"invalid variable name {key!r}: start with a letter or _, then letters, digits, _ . -",
            details={"field": "key"},
        )


async def execution_input(conn: asyncpg.Connection, caller: RuntimeCaller) -> Any:
    return await conn.fetchval("SELECT input FROM executions WHERE id = $1", caller.execution_id)


async def set_output(conn: asyncpg.Connection, caller: RuntimeCaller, value: Any) -> None:
    await conn.execute("UPDATE jobs SET output = $2::jsonb WHERE id = $1", caller.job_id, value)


async def get_condition(conn: asyncpg.Connection, caller: RuntimeCaller) -> bool | None:
    result: bool | None = await conn.fetchval(
        "SELECT condition FROM jobs WHERE id = $1", caller.job_id
    )
    return result


async def set_condition(conn: asyncpg.Connection, caller: RuntimeCaller, value: bool) -> None:
    await conn.execute("UPDATE jobs SET condition = $2 WHERE id = $1", caller.job_id, value)


def context(caller: RuntimeCaller) -> dict[str, Any]:
    return {
        "event": {
            "id": caller.event_id,
            "name": caller.event_name,
            "type": caller.event_type,
            "language": caller.language,
            "tags": caller.tags,
        },
        "execution": {
            "id": caller.execution_id,
            "trigger": caller.trigger,
            "started_at": caller.started_at.isoformat() if caller.started_at else None,
            "attempt": caller.attempt,
        },
        "job": {"id": caller.job_id, "target": caller.target, "mode": caller.mode},
        "user": {"id": caller.owner_id, "email": caller.user_email},
    }


async def get_variable(
    conn: asyncpg.Connection, core: Core, caller: RuntimeCaller, key: str
) -> tuple[bool, Any]:
    row = await conn.fetchrow(
        "SELECT value, value_encrypted, secret FROM variables WHERE owner_id = $1 AND key = $2",
        caller.owner_id,
        key,
    )
    if row is None:
        return False, None
    if row["secret"] and row["value_encrypted"] is not None:
        return True, core.cipher.decrypt_json(row["value_encrypted"])
    return True, row["value"]


async def put_variable(
    conn: asyncpg.Connection, core: Core, caller: RuntimeCaller, key: str, value: Any
) -> bool:
    """Create or replace a variable; True if it is a secret one (stored encrypted)."""
    # One round trip for a new or plain variable. ON CONFLICT checks `NOT secret` on the
    # locked row, so a secret one is never written in clear: it takes the locked path below.
    written = await conn.fetchval(
        """INSERT INTO variables (owner_id, key, value, value_encrypted, secret, description)
           VALUES ($1, $2, $3::jsonb, NULL, false, '')
           ON CONFLICT (owner_id, key) DO UPDATE
           SET value = EXCLUDED.value, value_encrypted = NULL, updated_at = now()
           WHERE NOT variables.secret
           RETURNING true""",
        caller.owner_id,
        key,
        value,
    )
    if written:
        return False
    async with conn.transaction():
        secret = await conn.fetchval(
            "SELECT secret FROM variables WHERE owner_id = $1 AND key = $2 FOR UPDATE",
            caller.owner_id,
            key,
        )
        await _write(conn, core, caller.owner_id, key, value, bool(secret))
    return bool(secret)


async def _write(
    conn: asyncpg.Connection, core: Core, owner_id: int, key: str, value: Any, secret: bool
) -> None:
    plain, encrypted = (None, core.cipher.encrypt_json(value)) if secret else (value, None)
    await conn.execute(
        """INSERT INTO variables (owner_id, key, value, value_encrypted, secret, description)
           VALUES ($1, $2, $3::jsonb, $4, $5, '')
           ON CONFLICT (owner_id, key) DO UPDATE
           SET value = EXCLUDED.value, value_encrypted = EXCLUDED.value_encrypted,
               updated_at = now()""",
        owner_id,
        key,
        plain,
        encrypted,
        secret,
    )


async def delete_variable(conn: asyncpg.Connection, caller: RuntimeCaller, key: str) -> bool:
    result = await conn.execute(
        "DELETE FROM variables WHERE owner_id = $1 AND key = $2", caller.owner_id, key
    )
    return str(result).endswith(" 1")


async def _locked_value(
    conn: asyncpg.Connection, core: Core, owner_id: int, key: str
) -> tuple[bool, Any, bool]:
    """(exists, value, secret) of a variable, row-locked for a read-modify-write."""
    # Create it first so concurrent first writers serialise on the same row.
    await conn.execute(
        """INSERT INTO variables (owner_id, key, value, secret, description)
           VALUES ($1, $2, 'null', false, '')
           ON CONFLICT (owner_id, key) DO NOTHING""",
        owner_id,
        key,
    )
    row = await conn.fetchrow(
        "SELECT value, value_encrypted, secret FROM variables"
        " WHERE owner_id = $1 AND key = $2 FOR UPDATE",
        owner_id,
        key,
    )
    assert row is not None
    value = (
        core.cipher.decrypt_json(row["value_encrypted"])
        if row["secret"] and row["value_encrypted"]
        else row["value"]
    )
    return True, value, bool(row["secret"])


async def increment_variable(
    conn: asyncpg.Connection, core: Core, caller: RuntimeCaller, key: str, by: int | float
) -> tuple[int | float, bool]:
    """(the new value, whether the variable is secret)."""
    async with conn.transaction():
        _, current, secret = await _locked_value(conn, core, caller.owner_id, key)
        if current is None:
            current = 0
        if isinstance(current, str):
            try:
                current = int(current) if current.strip().lstrip("-").isdigit() else float(current)
            except ValueError:
                raise ValidationFailed(
                    f"variable {key!r} is not a number: cannot increment it"
                ) from None
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise ValidationFailed(f"variable {key!r} is not a number: cannot increment it")
        new = current + by
        await _write(conn, core, caller.owner_id, key, new, secret)
        return new, secret


async def append_variable(
    conn: asyncpg.Connection, core: Core, caller: RuntimeCaller, key: str, value: Any
) -> tuple[int, bool]:
    """(the list's new length, whether the variable is secret)."""
    async with conn.transaction():
        _, current, secret = await _locked_value(conn, core, caller.owner_id, key)
        if current is None:
            current = []
        if not isinstance(current, list):
            raise ValidationFailed(f"variable {key!r} is not a list: cannot append to it")
        current.append(value)
        await _write(conn, core, caller.owner_id, key, current, secret)
        return len(current), secret
