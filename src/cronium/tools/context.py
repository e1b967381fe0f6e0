"""What action templates may use: event, execution, output, input and plain variables."""

from __future__ import annotations

from typing import Any

import asyncpg

_EXECUTION = """
SELECT x.id, x.status::text AS status, x.trigger::text AS trigger, x.input, x.output,
       x.condition, x.error, x.started_at, x.finished_at, x.owner_id,
       e.id AS event_id, e.name AS event_name, e.type::text AS event_type, e.tags
FROM executions x JOIN events e ON e.id = x.event_id WHERE x.id = $1
"""


async def plain_variables(conn: asyncpg.Connection, owner_id: int) -> dict[str, Any]:
    """The owner's non-secret variables (secret ones never reach a template)."""
    rows = await conn.fetch(
        "SELECT key, value FROM variables WHERE owner_id = $1 AND NOT secret ORDER BY key",
        owner_id,
    )
    return {r["key"]: r["value"] for r in rows}


async def template_context(conn: asyncpg.Connection, execution_id: int) -> dict[str, Any]:
    """The context of one execution's tool actions (empty when the execution is gone)."""
    row = await conn.fetchrow(_EXECUTION, execution_id)
    if row is None:
        return {}
    return {
        "event": {
            "id": row["event_id"],
            "name": row["event_name"],
            "type": row["event_type"],
            "tags": list(row["tags"]),
        },
        "execution": {
            "id": row["id"],
            "status": row["status"],
            "trigger": row["trigger"],
            "error": row["error"],
            "condition": row["condition"],
            "started_at": row["started_at"].isoformat() if row["started_at"] else None,
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        },
        "output": row["output"],
        "input": row["input"],
        "variables": await plain_variables(conn, row["owner_id"]),
    }


async def standalone_context(conn: asyncpg.Connection, owner_id: int) -> dict[str, Any]:
    """Outside a run (a credential test): no event or execution, the variables only."""
    return {
        "event": None,
        "execution": None,
        "output": None,
        "input": {},
        "variables": await plain_variables(conn, owner_id),
    }
