"""Dependency probes for /ready: each answers ok / absent / error with a reason."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

State = Literal["ok", "absent", "error"]
PROBE_TIMEOUT_S = 2.0
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Probe:
    state: State
    reason: str | None = None


async def probe_database(engine: AsyncEngine) -> Probe:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S), engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return Probe(
            "error",
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": "),
        )
    return Probe("ok")


def docker_endpoint(docker_host: str | None) -> tuple[str, str] | None:
    """(transport, address) for the Docker API, or None when nothing is configured or present."""
    if docker_host:
        parsed = urlparse(docker_host)
        if parsed.scheme == "unix":
            return "unix", parsed.path
        if parsed.scheme in ("tcp", "http"):
            return "tcp", f"http://{parsed.hostname}:{parsed.port or 2375}"
        return "invalid", docker_host
    if os.path.exists(DEFAULT_DOCKER_SOCKET):
        return "unix", DEFAULT_DOCKER_SOCKET
    return None


async def probe_docker(docker_host: str | None) -> Probe:
    endpoint = docker_endpoint(docker_host)
    if endpoint is None:
        return Probe(
            "absent", "no DOCKER_HOST and no /var/run/docker.sock: using the local executor"
        )
    transport_kind, address = endpoint
    if transport_kind == "invalid":
        return Probe("error", f"DOCKER_HOST {address!r} is not unix:// or tcp://")
    try:
        if transport_kind == "unix":
            transport = httpx.AsyncHTTPTransport(uds=address)
            base = "http://docker"
        else:
            transport = httpx.AsyncHTTPTransport()
            base = address
        async with httpx.AsyncClient(
            transport=transport, base_url=base, timeout=PROBE_TIMEOUT_S
        ) as c:
            resp = await c.get("/_ping")
        if resp.status_code == 200:
            return Probe("ok")
        return Probe("error", f"Docker answered HTTP {resp.status_code}")
    except (httpx.HTTPError, OSError) as exc:
        return Probe("error", f"Docker not reachable at {address}: {exc or type(exc).__name__}")


async def probe_valkey(valkey_url: str | None) -> Probe:
    if not valkey_url:
        return Probe("absent", "VALKEY_URL not set: in-process cache, limits and pub/sub")
    parsed = urlparse(valkey_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                if parsed.password:
                    user = parsed.username or "default"
                    writer.write(f"AUTH {user} {parsed.password}\r\n".encode())
                    await reader.readline()
                writer.write(b"PING\r\n")
                await writer.drain()
                reply = await reader.readline()
            finally:
                writer.close()
        if reply.startswith(b"+PONG"):
            return Probe("ok")
        return Probe("error", f"unexpected reply {reply[:60]!r}")
    except (OSError, TimeoutError) as exc:
        return Probe("error", f"Valkey not reachable at {host}:{port}: {exc or type(exc).__name__}")
