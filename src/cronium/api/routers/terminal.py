"""WS /api/v1/servers/{id}/terminal: a shell on the server in the browser (xterm.js).

Authenticated like the log stream (session cookie from our own origin, or a bearer
token). Only the server's owner and admins may open one: a shell is a write, so viewers
are refused, and another user's server is "not found". Refusals close the handshake with
1008 before anything is opened. Every session is in the audit log (terminal.open,
terminal.close with its duration and exit status; terminal.denied for refusals).

Frames: the browser sends JSON text, {"type":"input","data":"…"} and
{"type":"resize","cols":N,"rows":M}; the server sends the shell's output as binary frames
and ends with {"type":"exit","status":N|null,"reason":…} or {"type":"error",…}.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from cronium.api.deps import Principal
from cronium.api.routers.stream import WS_POLICY_VIOLATION, authenticate_ws
from cronium.core import Core
from cronium.db.models import Role
from cronium.domain import audit
from cronium.domain.servers import load_server_spec
from cronium.errors import CroniumError
from cronium.executors.ssh_connect import SshError
from cronium.services import terminal

router = APIRouter(tags=["servers"])
log = logging.getLogger("cronium.terminal")

WS_INTERNAL_ERROR = 1011


async def _audit(
    core: Core,
    action: str,
    principal: Principal,
    client_addr: str | None,
    server_id: int,
    details: dict[str, Any],
) -> None:
    async with core.sessions() as db, db.begin():
        audit.record(
            db,
            action,
            actor_user_id=principal.user_id,
            actor=principal.email,
            client_addr=client_addr,
            target_type="server",
            target_id=server_id,
            details=details,
        )


@router.websocket("/servers/{server_id}/terminal")
async def server_terminal(
    ws: WebSocket,
    server_id: int,
    cols: int = terminal.DEFAULT_COLS,
    rows: int = terminal.DEFAULT_ROWS,
) -> None:
    core: Core = ws.app.state.core
    addr = ws.client.host if ws.client else None
    try:
        principal = await authenticate_ws(ws, core)
    except CroniumError as exc:
        await ws.close(code=WS_POLICY_VIOLATION, reason=exc.message[:120])
        return
    async with core.db.acquire() as conn:
        owner_id = await conn.fetchval("SELECT owner_id FROM servers WHERE id = $1", server_id)
    refusal = None
    if principal.role is Role.viewer:
        refusal = "viewers may not open a terminal"  # a shell is a write, whoever owns it
    elif owner_id is None or not (principal.is_admin or owner_id == principal.user_id):
        refusal = f"server {server_id} not found"  # ids of others' servers reveal nothing
    if refusal is not None:
        if owner_id is not None:
            await _audit(core, "terminal.denied", principal, addr, server_id, {"reason": refusal})
        await ws.close(code=WS_POLICY_VIOLATION, reason=refusal[:120])
        return
    async with core.db.acquire() as conn:
        spec = await load_server_spec(core.cipher, conn, server_id)
    if spec is None:
        await ws.close(code=WS_POLICY_VIOLATION, reason="server not found")
        return
    await ws.accept()
    size = terminal.clamp_size(cols, rows) or (terminal.DEFAULT_COLS, terminal.DEFAULT_ROWS)
    try:
        stack, process = await terminal.open_shell(core.ssh, spec, *size)
    except Exception as exc:
        if not isinstance(exc, SshError):
            log.exception("terminal on server %s could not start", server_id)
            exc = SshError("ssh_error", f"the terminal on {spec.name} could not start: {exc}")
        await _audit(
            core,
            "terminal.failed",
            principal,
            addr,
            server_id,
            {"host": spec.host, "port": spec.port, "code": exc.code, "error": exc.message},
        )
        with contextlib.suppress(Exception):
            await ws.send_text(terminal.error_frame(exc))
            await ws.close(code=WS_INTERNAL_ERROR, reason=exc.code)
        return
    where = {"host": spec.host, "port": spec.port, "username": spec.username, "name": spec.name}
    await _audit(core, "terminal.open", principal, addr, server_id, where)
    opened = time.monotonic()
    end: terminal.TerminalEnd | None = None
    try:
        async with stack:
            end = await terminal.pump(ws, process)
    except (WebSocketDisconnect, RuntimeError, OSError) as exc:
        log.info("terminal on server %s ended: %r", server_id, exc)
    finally:
        process.close()
        if end is None:
            end = terminal.TerminalEnd("client_closed", None, time.monotonic() - opened)
        await _audit(
            core,
            "terminal.close",
            principal,
            addr,
            server_id,
            {
                **where,
                "duration_s": round(end.duration_s, 3),
                "exit_status": end.exit_status,
                "reason": end.reason,
            },
        )
    if end.reason != "client_closed":
        with contextlib.suppress(Exception):
            await ws.send_text(terminal.exit_frame(end))
            await ws.close(code=1000)
