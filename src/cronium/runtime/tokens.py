"""Execution tokens: minted per job at start, valid only while that job runs.

The token alone identifies the job (no ids in paths), so the token, the execution id and
the database id can never disagree. Only its SHA-256 is stored, on the job row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from cronium.security.tokens import hash_token, new_token

TOKEN_PREFIX = "cxt_"


@dataclass(frozen=True)
class RuntimeCaller:
    job_id: int
    execution_id: int
    event_id: int
    owner_id: int
    target: str
    attempt: int
    trigger: str
    started_at: datetime | None
    event_name: str
    event_type: str
    language: str | None
    tags: list[str]
    user_email: str
    mode: str | None


async def mint(conn: asyncpg.Connection, job_id: int, mode: str) -> str:
    """A fresh token for this attempt of the job (a retry gets a new one)."""
    token = new_token(TOKEN_PREFIX)
    await conn.execute(
        "UPDATE jobs SET runtime_token_hash = $2, mode = $3 WHERE id = $1", job_id, hash_token(token), mode
    )
    return token


async def resolve(conn: asyncpg.Connection, token: str) -> RuntimeCaller | None:
    """The running job this token belongs to, or None (unknown, or the job has ended)."""
    row = await conn.fetchrow(
        """SELECT j.id AS job_id, j.execution_id, j.event_id, x.owner_id, j.target, j.attempt,
                  x.trigger::text AS trigger, x.started_at, e.name AS event_name,
                  e.type::text AS event_type, e.language::text AS language, e.tags, u.email, j.mode
           FROM jobs j
           JOIN executions x ON x.id = j.execution_id
           JOIN events e ON e.id = j.event_id
           JOIN users u ON u.id = x.owner_id
           WHERE j.runtime_token_hash = $1 AND j.status = 'running'""",
        hash_token(token),
    )
    if row is None:
        return None
    return RuntimeCaller(
        job_id=row["job_id"],
        execution_id=row["execution_id"],
        event_id=row["event_id"],
        owner_id=row["owner_id"],
        target=row["target"],
        attempt=row["attempt"],
        trigger=row["trigger"],
        started_at=row["started_at"],
        event_name=row["event_name"],
        event_type=row["event_type"],
        language=row["language"],
        tags=list(row["tags"]),
        user_email=row["email"],
        mode=row["mode"],
    )
