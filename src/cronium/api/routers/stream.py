"""WS /api/v1/executions/{id}/stream: live log lines and status, resumable with `after`.

Only ids travel between nodes; this endpoint reads lines from the database after the last
sequence number it sent, so a reconnect with `after` resumes with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.datastructures import Headers

from cronium.api.deps import SESSION_COOKIE, Principal, from_session, from_token
from cronium.api.routers.executions import TERMINAL
from cronium.core import Core
from cronium.db.models import Execution
from cronium.errors import CroniumError

router = APIRouter(tags=["executions"])

BATCH_LINES = 1000
# Re-read even without a wake-up: covers a missed NOTIFY during a listener reconnect.
IDLE_RECHECK_S = 2.0
WS_POLICY_VIOLATION = 1008


async def authenticate_ws(ws: WebSocket, core: Core) -> Principal:
    async with core.sessions() as db, db.begin():
        header = ws.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return await from_token(db, header[7:].strip())
        cookie = ws.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise CroniumError("authentication required")
        # Browsers send cookies on cross-site WebSocket handshakes: require our own origin.
        origin = ws.headers.get("origin")
        if origin and urlparse(origin).netloc != ws.headers.get("host"):
            raise CroniumError("cross-origin WebSocket refused")
        # The session check reads `method` (for CSRF), which a WebSocket lacks: the
        # handshake is a GET, and the Origin check above is its CSRF defence.
        return await from_session(_Handshake(ws.headers), db, cookie)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Handshake:
    """The parts of a request `from_session` reads, for a WebSocket handshake."""

    headers: Headers
    method: str = "GET"


@router.websocket("/executions/{execution_id}/stream")
async def stream(ws: WebSocket, execution_id: int, after: int = 0) -> None:
    core: Core = ws.app.state.core
    try:
        principal = await authenticate_ws(ws, core)
    except CroniumError as exc:
        await ws.close(code=WS_POLICY_VIOLATION, reason=exc.message[:120])
        return
    async with core.sessions() as db:
        ex = await db.get(Execution, execution_id)
    if ex is None or not (principal.sees_all or ex.owner_id == principal.user_id):
        await ws.close(code=WS_POLICY_VIOLATION, reason=f"execution {execution_id} not found")
        return
    await ws.accept()
    wake = core.hub.subscribe(execution_id)
    closed = asyncio.create_task(_wait_closed(ws))
    try:
        await _pump(ws, core, execution_id, max(after, 0), wake, closed)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        core.hub.unsubscribe(execution_id, wake)
        closed.cancel()
        with contextlib.suppress(Exception):
            await ws.close()


async def _pump(
    ws: WebSocket,
    core: Core,
    execution_id: int,
    after: int,
    wake: asyncio.Event,
    closed: asyncio.Task[None],
) -> None:
    last_status: str | None = None
    while not closed.done():
        wake.clear()
        status, lines = await _read(core, execution_id, after)
        for line in lines:
            await ws.send_json(line)
            after = line["seq"]
        if len(lines) == BATCH_LINES:
            continue
        if status is None:
            # Deleted meanwhile (retention, event deleted): nothing more will come.
            await ws.send_json({"type": "end", "status": "deleted"})
            return
        if status != last_status:
            await ws.send_json({"type": "status", "status": status})
            last_status = status
        if status in {s.value for s in TERMINAL}:
            # One last read: lines flushed just before the final status.
            _, tail = await _read(core, execution_id, after)
            for line in tail:
                await ws.send_json(line)
            await ws.send_json({"type": "end", "status": status})
            return
        waiter = asyncio.ensure_future(wake.wait())
        await asyncio.wait(
            {waiter, closed}, timeout=IDLE_RECHECK_S, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()


async def _read(
    core: Core, execution_id: int, after: int
) -> tuple[str | None, list[dict[str, Any]]]:
    async with core.db.acquire() as conn:
        status = await conn.fetchval(
            "SELECT status::text FROM executions WHERE id = $1", execution_id
        )
        rows = await conn.fetch(
            """SELECT seq, stream::text AS stream, ts, target, line FROM log_lines
               WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
            execution_id,
            after,
            BATCH_LINES,
        )
    lines = [
        {
            "type": "log",
            "seq": r["seq"],
            "stream": r["stream"],
            "ts": r["ts"].isoformat(),
            "target": r["target"],
            "line": r["line"],
        }
        for r in rows
    ]
    return status, lines


async def _wait_closed(ws: WebSocket) -> None:
    """Consume client frames (ignored) until the client goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await ws.receive()
            if message.get("type") == "websocket.disconnect":
                return
