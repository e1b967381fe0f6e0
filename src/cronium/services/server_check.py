"""Server checks: can we reach a server, and what does it offer our events?

One check = a fresh SSH connection (never a pooled one: a check must prove that a new
connection works with the current credentials and pinned host key), one probe command,
close. The host key is checked like every connection's (trust on first use records it,
a changed key is refused until the user re-pins). The outcome is stored on the server:
status online/offline, last_checked_at, last_error and, when the probe ran, system_info.

Used by `POST /servers/{id}/check` and by the scheduler node's periodic health loop,
which claims due servers with a conditional UPDATE so that only one node checks each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import asyncssh

from cronium.core import Core
from cronium.db.models import ServerStatus
from cronium.domain.servers import load_server_spec
from cronium.executors.base import ServerSpec
from cronium.executors.ssh_connect import SshError, connect_error, where

log = logging.getLogger("cronium.servers")

TOOLS = ("python3", "node", "curl", "bash", "setsid")
VERSIONED = ("python3", "node")
MAX_VALUE = 300  # characters kept of one probe value
MAX_CONCURRENT_CHECKS = 8
MAX_TICK_S = 60.0

# Run by `sh -s` on the server (the script comes on stdin, so the login shell only has to
# start `sh`, whatever it is). It only reads: os-release, uname, `command -v`, versions.
PROBE = r"""
os=$(cat /etc/os-release /usr/lib/os-release 2>/dev/null | sed -n 's/^PRETTY_NAME=//p' | head -n 1)
printf 'os=%s\n' "$os"
printf 'kernel=%s\n' "$(uname -srm 2>/dev/null)"
printf 'shell=%s\n' "${SHELL:-}"
printf 'user=%s\n' "$(id -un 2>/dev/null)"
for tool in python3 node curl bash setsid; do
  found=$(command -v "$tool" 2>/dev/null) && printf 'path.%s=%s\n' "$tool" "$found"
done
if command -v python3 >/dev/null 2>&1; then
  printf 'version.python3=%s\n' "$(python3 --version 2>&1 | head -n 1)"
fi
if command -v node >/dev/null 2>&1; then
  printf 'version.node=%s\n' "$(node --version 2>&1 | head -n 1)"
fi
exit 0
"""

_WARNINGS = {
    "setsid": "setsid (util-linux) is missing: no event can run on this server",
    "bash": "bash is missing: bash events cannot run on this server",
    "python3": "python3 is missing: Python events cannot run on this server",
    "node": "node is missing: Node.js events cannot run on this server",
    "curl": "curl is missing: bash events cannot use the Runtime API (cronium_* helpers)",
}

_STORE_OK = """
UPDATE servers
SET status = 'online', last_checked_at = now(), last_error = NULL, system_info = $2
WHERE id = $1
RETURNING last_checked_at, host_key_fingerprint
"""
_STORE_FAILED = """
UPDATE servers
SET status = 'offline', last_checked_at = now(), last_error = $2
WHERE id = $1
RETURNING last_checked_at, host_key_fingerprint
"""
# Claim one due server for this node: the row lock (SKIP LOCKED) and the re-checked
# condition make each due server go to exactly one node, however many run this at once.
_CLAIM_DUE = """
UPDATE servers SET last_checked_at = now()
WHERE id = (
    SELECT id FROM servers
    WHERE (last_checked_at IS NULL OR last_checked_at < now() - make_interval(secs => $1))
      AND id <> ALL($2::bigint[])
    ORDER BY last_checked_at NULLS FIRST, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
AND (last_checked_at IS NULL OR last_checked_at < now() - make_interval(secs => $1))
RETURNING id
"""


@dataclass(frozen=True)
class CheckResult:
    server_id: int
    ok: bool
    status: ServerStatus
    checked_at: datetime
    latency_ms: int | None  # connecting (TCP, key exchange, authentication); None if it failed
    duration_ms: int  # the whole check
    error: SshError | None
    system_info: dict[str, Any] | None  # what the probe found; None when it did not run
    host_key_fingerprint: str | None  # the pinned key after the check


async def check_server(core: Core, server_id: int) -> CheckResult | None:
    """Check one server now and store the outcome; None if the server does not exist."""
    async with core.db.acquire() as conn:
        spec = await load_server_spec(core.cipher, conn, server_id)
    if spec is None:
        return None
    started = time.monotonic()
    latency_ms: int | None = None
    info: dict[str, Any] | None = None
    error: SshError | None = None
    try:
        ssh = await core.ssh.connect(spec)
        latency_ms = _ms_since(started)
        try:
            info = await _probe(spec, ssh, core.settings.ssh_command_timeout_s)
        finally:
            ssh.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ssh.wait_closed(), timeout=2)
    except SshError as exc:
        error = exc
    duration_ms = _ms_since(started)
    async with core.db.acquire() as conn:
        if error is None:
            assert info is not None
            row = await conn.fetchrow(_STORE_OK, server_id, info)
        else:
            row = await conn.fetchrow(_STORE_FAILED, server_id, error.message)
    if row is None:
        return None  # deleted while we checked it
    if error is None:
        core.ssh.succeeded(spec)
    return CheckResult(
        server_id=server_id,
        ok=error is None,
        status=ServerStatus.online if error is None else ServerStatus.offline,
        checked_at=row["last_checked_at"],
        latency_ms=latency_ms,
        duration_ms=duration_ms,
        error=error,
        system_info=info,
        host_key_fingerprint=row["host_key_fingerprint"],
    )


async def _probe(
    server: ServerSpec, ssh: asyncssh.SSHClientConnection, timeout_s: float
) -> dict[str, Any]:
    try:
        result = await asyncio.wait_for(
            ssh.run("sh -s", input=PROBE, check=False, encoding="utf-8"), timeout=timeout_s
        )
    except TimeoutError:
        raise SshError(
            "ssh_error",
            f"the check's probe command on {where(server)} did not finish within {timeout_s:g} s",
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise connect_error(server, exc, timeout_s) from None
    if result.exit_status != 0:
        stderr = str(result.stderr or "").strip()[:MAX_VALUE]
        raise SshError(
            "ssh_error",
            f"the check's probe command failed on {where(server)} "
            f"(exit status {result.exit_status}): {stderr or 'no output'}",
        )
    return parse_probe(str(result.stdout or ""))


def parse_probe(output: str) -> dict[str, Any]:
    """The probe's `key=value` lines as the system_info stored on the server."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key not in values:
            values[key] = value.strip()[:MAX_VALUE]
    tools: dict[str, dict[str, Any]] = {}
    for tool in TOOLS:
        path = values.get(f"path.{tool}")
        entry: dict[str, Any] = {"present": bool(path), "path": path or None}
        if tool in VERSIONED:
            entry["version"] = _version(values.get(f"version.{tool}")) if path else None
        tools[tool] = entry
    return {
        "os": _unquote(values.get("os", "")) or values.get("kernel", "").split(" ")[0] or None,
        "kernel": values.get("kernel") or None,
        "shell": values.get("shell") or None,
        "user": values.get("user") or None,
        "tools": tools,
        "warnings": [_WARNINGS[t] for t in TOOLS if not tools[t]["present"]],
    }


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value.replace('\\"', '"').replace("\\\\", "\\")


def _version(value: str | None) -> str | None:
    """`Python 3.12.3` -> `3.12.3`, `v20.11.1` -> `20.11.1`."""
    if not value:
        return None
    value = value.removeprefix("Python ").strip()
    return value[1:] if value[:1] == "v" and value[1:2].isdigit() else value


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


# -- periodic health checks --------------------------------------------------------------


def check_bound_s(core: Core) -> float:
    """The longest one check may take: connecting, then the probe command."""
    settings = core.settings
    return settings.ssh_connect_timeout_s + settings.ssh_command_timeout_s + 5.0


async def check_due_servers(
    core: Core,
    interval_s: float,
    *,
    concurrency: int = MAX_CONCURRENT_CHECKS,
    stop: asyncio.Event | None = None,
) -> list[CheckResult]:
    """One pass: check every server not checked for `interval_s`, `concurrency` at once.

    Each server is claimed first (its last_checked_at moved to now by a conditional
    UPDATE), so a server another node claimed is left to that node. Failures of single
    checks are logged, never raised.
    """
    results: list[CheckResult] = []
    seen: list[int] = []
    slots = asyncio.Semaphore(concurrency)

    async def checked(server_id: int) -> None:
        try:
            async with asyncio.timeout(check_bound_s(core)):
                result = await check_server(core, server_id)
            if result is not None:
                results.append(result)
                if not result.ok and result.error is not None:
                    log.info("server %d is offline: %s", server_id, result.error.message)
        except Exception as exc:
            log.warning("health check of server %d failed: %r", server_id, exc)
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        while stop is None or not stop.is_set():
            await slots.acquire()
            try:
                async with core.db.acquire() as conn:
                    server_id = await conn.fetchval(_CLAIM_DUE, interval_s, seen)
            except (OSError, ConnectionError, asyncpg.PostgresError) as exc:
                log.warning("server health checks: cannot claim due servers: %s", exc)
                server_id = None
            except BaseException:
                slots.release()
                raise
            if server_id is None:
                slots.release()
                break
            seen.append(server_id)
            group.create_task(checked(server_id), name=f"server-check-{server_id}")
    return results


async def health_check_loop(core: Core, stop: asyncio.Event, interval_s: float) -> None:
    """Check due servers until `stop`; run by the node with the scheduler role."""
    if interval_s <= 0:
        return
    tick_s = min(interval_s, MAX_TICK_S)
    while not stop.is_set():
        one_pass = asyncio.create_task(check_due_servers(core, interval_s, stop=stop))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({one_pass, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not one_pass.done():
                one_pass.cancel()  # stopping: checks in flight are abandoned, not awaited
            await asyncio.wait({one_pass})
        if not one_pass.cancelled() and (exc := one_pass.exception()) is not None:
            log.error("server health check pass failed: %r", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=tick_s)
