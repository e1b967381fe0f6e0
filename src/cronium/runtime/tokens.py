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
ENDED = "execution token is invalid or its job has ended"


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
    # What the job row holds while this token is its live one (see store.LIVE).
    token_hash: str


async def mint(conn: asyncpg.Connection, job_id: int, mode: str) -> str:
    """A fresh token for this attempt of the job (a retry gets a new one)."""
    token = new_token(TOKEN_PREFIX)
    await conn.execute(
        "UPDATE jobs SET runtime_token_hash = $2, mode = $3 WHERE id = $1",
        job_id,
        hash_token(token),
        mode,
    )
    return token


async def resolve(conn: asyncpg.Connection, token: str) -> RuntimeCaller | None:
    """The running job this token belongs to, or None (unknown, or the job has ended)."""
    token_hash = hash_token(token)
    row = await conn.fetchrow(
        """SELECT j.id AS job_id, j.execution_id, j.event_id, x.owner_id, j.target, j.attempt,
                  x.trigger::text AS trigger, x.started_at, e.name AS event_name,
                  e.type::text AS event_type, e.language::text AS language, e.tags, u.email, j.mode
           FROM jobs j
           JOIN executions x ON x.id = j.execution_id
           JOIN events e ON e.id = j.event_id
           JOIN users u ON u.id = x.owner_id
           WHERE j.runtime_token_hash = $1 AND j.status = 'running'""",
        token_hash,
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
        token_hash=token_hash,
    )


class CallerCache:
    """Token → running job, for calls that arrive over this node's Unix socket.

    Only the token this node's worker minted for a job it runs right now is ever cached:
    the worker registers it when the job starts (`start_job`) and takes it back before the
    job's end is saved (`evict_job`), and a lookup that began before and answers after
    finds nothing to re-cache. Bounded by the jobs running here. Each Runtime API operation
    still checks in its own statement that the token is its job's live one (store.LIVE).
    """

    def __init__(self) -> None:
        self._by_hash: dict[str, RuntimeCaller] = {}
        self._live: dict[int, str] = {}  # job id -> hash of its live token, jobs run here

    def start_job(self, job_id: int, token: str) -> None:
        self._live[job_id] = hash_token(token)

    def get(self, token: str) -> RuntimeCaller | None:
        return self._by_hash.get(hash_token(token))

    def put(self, token: str, caller: RuntimeCaller) -> None:
        """Cache a resolved caller, unless its job is not (or no longer) running here."""
        key = hash_token(token)
        if self._live.get(caller.job_id) == key:
            self._by_hash[key] = caller

    def evict_job(self, job_id: int) -> None:
        key = self._live.pop(job_id, None)
        if key is not None:
            self._by_hash.pop(key, None)
