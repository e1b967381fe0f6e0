"""Interactive shells on a user's server for the browser terminal.

One terminal = one PTY session (`xterm-256color`) on a pooled SSH connection, so the host
key is checked against the pinned one exactly as for jobs (`SshPool.lease`), and a
terminal counts against the connection's sessions like a job. The browser side speaks
JSON text frames (`input`, `resize`); the shell's output goes back as binary frames, so
UTF-8 sequences split across reads reach xterm.js intact. The session ends when either
side does, or after `IDLE_LIMIT_S` without a keystroke.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from dataclasses import dataclass
from typing import Any, Protocol

import asyncssh

from cronium.executors.base import ServerSpec
from cronium.executors.ssh_connect import SshError, SshPool, connect_error

log = logging.getLogger("cronium.terminal")

TERM_TYPE = "xterm-256color"
IDLE_LIMIT_S = 30 * 60.0  # no input for this long closes the terminal
MAX_INPUT_CHARS = 64 * 1024  # one input frame (a big paste is several)
MAX_COLS, MAX_ROWS = 1000, 500
DEFAULT_COLS, DEFAULT_ROWS = 80, 24
_READ_CHUNK = 32 * 1024


class Browser(Protocol):
    """The WebSocket side, as the pump needs it (Starlette's WebSocket fits)."""

    async def receive(self) -> Any: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def send_text(self, data: str) -> None: ...


@dataclass
class TerminalEnd:
    """How a terminal session ended, for the socket's last frame and the audit log."""

    reason: str  # exit | client_closed | idle | connection_lost
    exit_status: int | None
    duration_s: float


def clamp_size(cols: object, rows: object) -> tuple[int, int] | None:
    """A terminal size within sane bounds, or None when the values are not numbers."""
    if isinstance(cols, bool) or isinstance(rows, bool):
        return None
    if not isinstance(cols, int | float) or not isinstance(rows, int | float):
        return None
    return (min(max(int(cols), 1), MAX_COLS), min(max(int(rows), 1), MAX_ROWS))


async def open_shell(
    pool: SshPool, spec: ServerSpec, cols: int, rows: int
) -> tuple[contextlib.AsyncExitStack, asyncssh.SSHClientProcess[bytes]]:
    """A login shell in a PTY on a pooled connection; close the stack to release it.

    A pooled connection can die unnoticed between uses: one fresh try, as jobs do.
    """
    for attempt in (1, 2):
        stack = contextlib.AsyncExitStack()
        try:
            pooled = await stack.enter_async_context(pool.lease(spec))
            try:
                process: asyncssh.SSHClientProcess[bytes] = await pooled.conn.create_process(
                    term_type=TERM_TYPE, term_size=(cols, rows), encoding=None
                )
            except (OSError, asyncssh.Error) as exc:
                pooled.close()
                if attempt == 2:
                    raise connect_error(spec, exc, pool.connect_timeout_s) from None
                await stack.aclose()
                continue
        except BaseException:
            await stack.aclose()
            raise
        return stack, process
    raise AssertionError("unreachable")


async def pump(
    ws: Browser,
    process: asyncssh.SSHClientProcess[bytes],
    idle_limit_s: float | None = None,
) -> TerminalEnd:
    """Shuttle keystrokes in and output out until the shell or the browser ends."""
    started = time.monotonic()
    idle_s = IDLE_LIMIT_S if idle_limit_s is None else idle_limit_s
    output = asyncio.create_task(_to_browser(ws, process))
    inputs = asyncio.create_task(_from_browser(ws, process, idle_s))
    try:
        done, _ = await asyncio.wait({output, inputs}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (output, inputs):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(output, inputs, return_exceptions=True)
    if output in done and not output.cancelled() and output.exception() is None:
        if output.result() == "client_closed":
            process.close()
            return TerminalEnd("client_closed", None, time.monotonic() - started)
        # The shell closed its side: wait briefly for the exit status that follows EOF.
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(process.wait_closed(), timeout=5)
        status = process.exit_status
        if status is None and process.exit_signal:
            status = 128 + _signal_number(process.exit_signal[0])
        reason = "exit" if status is not None else "connection_lost"
        return TerminalEnd(reason, status, time.monotonic() - started)
    if output in done:
        reason = "connection_lost"  # reading from SSH failed
    elif not inputs.cancelled() and inputs.exception() is None:
        reason = inputs.result()
    else:
        reason = "client_closed"
    process.close()  # the browser went away (or idled out): end the shell's channel
    return TerminalEnd(reason, None, time.monotonic() - started)


async def _to_browser(ws: Browser, process: asyncssh.SSHClientProcess[bytes]) -> str:
    """Forward output until EOF ("eof") or until the browser cannot take it any more."""
    while True:
        data = await process.stdout.read(_READ_CHUNK)
        if not data:
            return "eof"
        try:
            await ws.send_bytes(data)
        except Exception:  # the socket is gone (Starlette/uvicorn raise several kinds)
            return "client_closed"


async def _from_browser(
    ws: Browser, process: asyncssh.SSHClientProcess[bytes], idle_s: float
) -> str:
    """Apply the browser's frames; returns why it stopped (client_closed or idle)."""
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), timeout=idle_s)
        except TimeoutError:
            return "idle"
        if message.get("type") == "websocket.disconnect":
            return "client_closed"
        raw = message.get("bytes")
        if raw is not None:
            process.stdin.write(raw[:MAX_INPUT_CHARS])
            continue
        apply_frame(process, message.get("text") or "")


def apply_frame(process: asyncssh.SSHClientProcess[bytes], text: str) -> None:
    """One JSON text frame: {"type":"input","data":…} or {"type":"resize","cols","rows"}."""
    try:
        frame = json.loads(text)
    except ValueError:
        return
    if not isinstance(frame, dict):
        return
    kind = frame.get("type")
    if kind == "input" and isinstance(frame.get("data"), str):
        process.stdin.write(frame["data"][:MAX_INPUT_CHARS].encode("utf-8", "replace"))
    elif kind == "resize":
        size = clamp_size(frame.get("cols"), frame.get("rows"))
        if size is not None:
            process.change_terminal_size(*size)


def _signal_number(name: str) -> int:
    with contextlib.suppress(AttributeError):
        return int(getattr(signal, f"SIG{name}"))
    return 0


def error_frame(exc: SshError) -> str:
    return json.dumps({"type": "error", "code": exc.code, "message": exc.message})


def exit_frame(end: TerminalEnd) -> str:
    return json.dumps({"type": "exit", "status": end.exit_status, "reason": end.reason})
