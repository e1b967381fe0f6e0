"""Database side of the Runtime API: every function is scoped by the caller's job.

Every operation checks, in its own statement (or first in its transaction), that the
caller's token is still its job's live one (`LIVE`): a call that reaches the database after
the job's end is saved is refused, even when its token came from the socket's cache or was
checked a moment before the end.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from cronium.core import Core
from cronium.errors import Unauthorized, ValidationFailed
from cronium.runtime.tokens import ENDED, RuntimeCaller

VARIABLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")

# The caller's job still runs under its token: $1 is the job id, $2 the token's hash (the
# end of a job, a retry or a recovery clears the hash). The same test as authentication.
LIVE = (
    "EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND status = 'running' AND runtime_token_hash = $2)"
)


def _ended() -> Unauthorized:
    return Unauthorized(ENDED)


async def ensure_live(conn: asyncpg.Connection, caller: RuntimeCaller) -> None:
    """Refuse the call if the caller's job has ended (for calls with no statement of their own)."""
    if not await conn.fetchval(f"SELECT {LIVE}", caller.job_id, caller.token_hash):
        raise _ended()


def check_key(key: str) -> None:
    if not VARIABLE_KEY.match(key):
        raise ValidationFailed(
            f"invalid variable name {key!r}: start with a letter or _, then letters, digits, _ . -",
            details={"field": "key"},
        )


async def execution_input(conn: asyncpg.Connection, caller: RuntimeCaller) -> Any:
    row = await conn.fetchrow(
        f"SELECT input FROM executions WHERE id = $3 AND {LIVE}",
        caller.job_id,
        caller.token_hash,
        caller.execution_id,
    )
    if row is None:
        raise _ended()
    return row["input"]


async def set_output(conn: asyncpg.Connection, caller: RuntimeCaller, value: Any) -> None:
    await _update_job(conn, caller, "output = $3::jsonb", value)


async def get_condition(conn: asyncpg.Connection, caller: RuntimeCaller) -> bool | None:
    row = await conn.fetchrow(
        "SELECT condition FROM jobs WHERE id = $1 AND status = 'running'"
        " AND runtime_token_hash = $2",
        caller.job_id,
        caller.token_hash,
    )
    if row is None:
        raise _ended()
    result: bool | None = row["condition"]
    return result


async def set_condition(conn: asyncpg.Connection, caller: RuntimeCaller, value: bool) -> None:
    await _update_job(conn, caller, "condition = $3", value)


async def _update_job(
    conn: asyncpg.Connection, caller: RuntimeCaller, assignment: str, value: Any
) -> None:
    """Set a column of the caller's job while it runs under this token, else refuse."""
    result = await conn.execute(
        f"UPDATE jobs SET {assignment} WHERE id = $1 AND status = 'running'"
        " AND runtime_token_hash = $2",
        caller.job_id,
        caller.token_hash,
        value,
    )
    if str(result) != "UPDATE 1":
        raise _ended()


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
        f"""SELECT {LIVE} AS live, v.value, v.value_encrypted, v.secret
            FROM (SELECT 1) AS one
            LEFT JOIN variables v ON v.owner_id = $3 AND v.key = $4""",
        caller.job_id,
        caller.token_hash,
        caller.owner_id,
        key,
    )
    assert row is not None
    if not row["live"]:
        raise _ended()
    if row["secret"] is None:  # no such variable
        return False, None
    if row["secret"] and row["value_encrypted"] is not None:
        return True, core.cipher.decrypt_json(row["value_encrypted"])
    return True, row["value"]


async def put_variable(
    conn: asyncpg.Connection, core: Core, caller: RuntimeCaller, key: str, value: Any
) -> bool:
    """Create or replace a variable; True if it is a secret one (stored encrypted)."""
    # One round trip for a new or plain variable. ON CONFLICT checks `NOT secret` on the
    # locked row, so a secret one is never written in clear: it takes the locked path below
    # (as does a call of an ended job, refused there).
    written = await conn.fetchval(
        f"""INSERT INTO variables (owner_id, key, value, value_encrypted, secret, description)
            SELECT $3, $4, $5::jsonb, NULL, false, '' WHERE {LIVE}
            ON CONFLICT (owner_id, key) DO UPDATE
            SET value = EXCLUDED.value, value_encrypted = NULL, updated_at = now()
            WHERE NOT variables.secret
            RETURNING true""",
        caller.job_id,
        caller.token_hash,
        caller.owner_id,
        key,
        value,
    )
    if written:
        return False
    async with conn.transaction():
        await ensure_live(conn, caller)
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
        f"DELETE FROM variables WHERE owner_id = $3 AND key = $4 AND {LIVE}",
        caller.job_id,
        caller.token_hash,
        caller.owner_id,
        key,
    )
    if str(result).endswith(" 1"):
        return True
    await ensure_live(conn, caller)  # nothing deleted: no such variable, or refused
    return False


async def _locked_value(
    conn: asyncpg.Connection, core: Core, caller: RuntimeCaller, key: str
) -> tuple[Any, bool]:
    """(value, secret) of a variable, row-locked for a read-modify-write (in a transaction,
    which a call of an ended job rolls back)."""
    # Create it first so concurrent first writers serialise on the same row.
    await conn.execute(
        """INSERT INTO variables (owner_id, key, value, secret, description)
           VALUES ($1, $2, 'null', false, '')
           ON CONFLICT (owner_id, key) DO NOTHING""",
        caller.owner_id,
        key,
    )
    row = await conn.fetchrow(
        f"SELECT {LIVE} AS live, value, value_encrypted, secret FROM variables"
        " WHERE owner_id = $3 AND key = $4 FOR UPDATE",
        caller.job_id,
        caller.token_hash,
        caller.owner_id,
        key,
    )
    assert row is not None
    if not row["live"]:
        raise _ended()
    value = (
        core.cipher.decrypt_json(row["value_encrypted"])
        if row["secret"] and row["value_encrypted"]
        else row["value"]
    )
    return value, bool(row["secret"])


async def increment_variable(
    conn: asyncpg.Connection, core: Core, caller: RuntimeCaller, key: str, by: int | float
) -> tuple[int | float, bool]:
    """(the new value, whether the variable is secret)."""
    async with conn.transaction():
        current, secret = await _locked_value(conn, core, caller, key)
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
        current, secret = await _locked_value(conn, core, caller, key)
        if current is None:
            current = []
        if not isinstance(current, list):
            raise ValidationFailed(f"variable {key!r} is not a list: cannot append to it")
        current.append(value)
        await _write(conn, core, caller.owner_id, key, current, secret)
        return len(current), secret
