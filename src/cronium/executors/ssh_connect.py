"""SSH connections to users' servers: pooled, host keys pinned, every failure named.

One pool per process, shared by the ssh executor and the server checks. A server gets as
many connections as its running jobs need (`JOBS_PER_CONNECTION` each: OpenSSH allows 10
sessions per connection by default, and a job uses one plus short setup channels). The
host key is checked during the key exchange, before any credential is sent: a pinned key
must match, an unpinned server is trusted on first use and its key recorded. A breaker
per server stops hammering a host that keeps failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from cronium.executors.base import ExecutorError, ServerSpec

log = logging.getLogger("cronium.executors.ssh")

JOBS_PER_CONNECTION = 4
KEEPALIVE_COUNT_MAX = 3
BREAKER_THRESHOLD = 3  # consecutive failures before a server is backed off
BREAKER_BASE_S = 10.0
BREAKER_MAX_S = 300.0

RecordHostKey = Callable[[int, str, str], Awaitable[None]]


class SshError(ExecutorError):
    """An SSH failure with a stable `code`: host_unreachable, connection_refused,
    auth_failed, host_key_mismatch, interpreter_missing, connection_lost, backed_off,
    ssh_error."""

    def __init__(self, code: str, message: str, *, permanent: bool = False) -> None:
        super().__init__(message, permanent=permanent)
        self.code = code


def fingerprint(key: asyncssh.SSHKey) -> str:
    """OpenSSH's SHA256 fingerprint (`SHA256:…`), as `ssh-keygen -l` prints it."""
    return key.get_fingerprint("sha256")


def public_key_line(key: asyncssh.SSHKey) -> str:
    """`<type> <base64>`: the pinned form, without a comment."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def normalise_fingerprint(value: str) -> str:
    value = value.strip()
    return value if value.upper().startswith(("SHA256:", "MD5:")) else f"SHA256:{value}"


def key_matches(server: ServerSpec, key: asyncssh.SSHKey) -> bool:
    """Whether the offered host key is the pinned one (no pin yet: trust on first use)."""
    if server.host_key:
        return public_key_line(key) == " ".join(server.host_key.split()[:2])
    if server.host_key_fingerprint:
        wanted = normalise_fingerprint(server.host_key_fingerprint)
        if wanted.upper().startswith("MD5:"):
            return key.get_fingerprint("md5").lower() == wanted.lower()
        return fingerprint(key) == wanted
    return True


class _Client(asyncssh.SSHClient):
    """Checks the host key against the server's pin during key exchange."""

    def __init__(self, server: ServerSpec) -> None:
        self.server = server
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        return key_matches(self.server, key)


def where(server: ServerSpec) -> str:
    return f"{server.name} ({server.username}@{server.host}:{server.port})"


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0
    last_error: str = ""


@dataclass
class PooledConnection:
    conn: asyncssh.SSHClientConnection
    identity: str
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)
    _sftp: asyncssh.SFTPClient | None = None
    _sftp_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def alive(self) -> bool:
        return not self.conn.is_closed()

    async def sftp(self) -> asyncssh.SFTPClient:
        """One SFTP session per connection, shared by the jobs on it."""
        async with self._sftp_lock:
            if self._sftp is None:
                self._sftp = await self.conn.start_sftp_client()
            return self._sftp

    def close(self) -> None:
        self.conn.close()


class SshPool:
    """Connections, per-server job slots and breakers for this process."""

    def __init__(
        self,
        *,
        connect_timeout_s: float = 10.0,
        keepalive_s: float = 15.0,
        idle_s: float = 300.0,
        record_host_key: RecordHostKey | None = None,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.idle_s = idle_s
        self.record_host_key = record_host_key
        self._conns: dict[int, list[PooledConnection]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._slots: dict[int, tuple[int, asyncio.Semaphore]] = {}
        self._breakers: dict[int, _Breaker] = {}

    @classmethod
    def from_settings(cls, settings: Any, record_host_key: RecordHostKey | None) -> SshPool:
        return cls(
            connect_timeout_s=settings.ssh_connect_timeout_s,
            keepalive_s=settings.ssh_keepalive_s,
            idle_s=settings.ssh_idle_s,
            record_host_key=record_host_key,
        )

    # -- slots -------------------------------------------------------------------------

    def slot(self, server: ServerSpec) -> asyncio.Semaphore:
        """The server's job slots (its max_concurrent_jobs), on this node."""
        size = max(1, server.max_concurrent_jobs)
        current = self._slots.get(server.server_id)
        if current is None or current[0] != size:
            # A changed limit applies to jobs that start from now on.
            current = (size, asyncio.Semaphore(size))
            self._slots[server.server_id] = current
        return current[1]

    # -- connections -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, server: ServerSpec) -> AsyncIterator[PooledConnection]:
        """A live connection to `server` for one job; counts the job against it."""
        pooled = await self._acquire(server)
        pooled.active += 1
        try:
            yield pooled
        finally:
            pooled.active -= 1
            pooled.last_used = time.monotonic()

    async def _acquire(self, server: ServerSpec) -> PooledConnection:
        self._check_breaker(server)
        identity = _identity(server)
        lock = self._locks.setdefault(server.server_id, asyncio.Lock())
        async with lock:
            conns = self._conns.setdefault(server.server_id, [])
            self._prune(conns, identity, server)
            for pooled in sorted(conns, key=lambda p: p.active):
                if pooled.active < JOBS_PER_CONNECTION:
                    return pooled
            try:
                conn = await self.connect(server)
            except SshError as exc:
                self.failed(server, exc)
                raise
            self.succeeded(server)
            pooled = PooledConnection(conn, identity)
            conns.append(pooled)
            return pooled

    def _prune(self, conns: list[PooledConnection], identity: str, server: ServerSpec) -> None:
        now = time.monotonic()
        for pooled in list(conns):
            offered = pooled.conn.get_server_host_key()
            repinned = offered is not None and not key_matches(server, offered)
            stale = pooled.identity != identity or repinned or not pooled.alive
            idle = pooled.active == 0 and now - pooled.last_used > self.idle_s
            if (stale and pooled.active == 0) or not pooled.alive or idle:
                conns.remove(pooled)
                pooled.close()
            elif stale:
                conns.remove(pooled)  # running jobs keep it; it closes when they are done

    async def connect(self, server: ServerSpec) -> asyncssh.SSHClientConnection:
        """A new connection, host key checked (and recorded on first use) before auth."""
        client = _Client(server)
        options: dict[str, Any] = {}
        if server.auth_type == "password":
            options["password"] = server.secret
            options["client_keys"] = None
            options["preferred_auth"] = "password,keyboard-interactive"
        else:
            try:
                key = asyncssh.import_private_key(server.secret, server.passphrase)
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise SshError(
                    "auth_failed",
                    f"the private key of {server.name} cannot be used: {exc}",
                    permanent=True,
                ) from None
            options["client_keys"] = [key]
            options["preferred_auth"] = "publickey"
        if server.host_key:
            with contextlib.suppress(asyncssh.KeyImportError):
                # Offer only the pinned key's algorithm so the server shows that key.
                pinned = asyncssh.import_public_key(server.host_key)
                options["server_host_key_algs"] = [
                    alg.decode() for alg in pinned.sig_algorithms
                ] or "default"
        try:
            conn = await asyncio.wait_for(
                asyncssh.connect(
                    server.host,
                    server.port,
                    username=server.username,
                    client_factory=lambda: client,
                    known_hosts=([], [], []),
                    agent_path=None,
                    config=None,
                    keepalive_interval=self.keepalive_s,
                    keepalive_count_max=KEEPALIVE_COUNT_MAX,
                    login_timeout=self.connect_timeout_s,
                    **options,
                ),
                timeout=self.connect_timeout_s,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise self._mismatch(server, client) from None
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise connect_error(server, exc, self.connect_timeout_s) from None
        offered = conn.get_server_host_key()
        if offered is not None and not server.host_key and self.record_host_key is not None:
            try:
                await self.record_host_key(
                    server.server_id, public_key_line(offered), fingerprint(offered)
                )
            except Exception:
                conn.close()
                raise
        return conn

    @staticmethod
    def _mismatch(server: ServerSpec, client: _Client) -> SshError:
        offered = fingerprint(client.offered) if client.offered is not None else "unknown"
        pinned = server.host_key_fingerprint or "the pinned key"
        return SshError(
            "host_key_mismatch",
            f"host key mismatch on {where(server)}: expected {pinned}, the server offered "
            f"{offered}. If the server's key really changed, re-pin it (PATCH the server "
            "with the new host_key_fingerprint, or null to trust the next key) and check it "
            "again.",
            permanent=True,
        )

    # -- breaker -----------------------------------------------------------------------

    def _check_breaker(self, server: ServerSpec) -> None:
        breaker = self._breakers.get(server.server_id)
        if breaker is None:
            return
        wait_s = breaker.open_until - time.monotonic()
        if wait_s > 0:
            raise SshError(
                "backed_off",
                f"{where(server)} is backed off for another {wait_s:.0f} s after "
                f"{breaker.failures} failures in a row (last: {breaker.last_error})",
            )

    def failed(self, server: ServerSpec, exc: SshError) -> None:
        """Count a failure against the server; past the threshold, back it off."""
        if exc.code == "backed_off":
            return
        breaker = self._breakers.setdefault(server.server_id, _Breaker())
        breaker.failures += 1
        breaker.last_error = exc.message
        if breaker.failures >= BREAKER_THRESHOLD:
            backoff_s = min(
                BREAKER_MAX_S, BREAKER_BASE_S * 2 ** (breaker.failures - BREAKER_THRESHOLD)
            )
            breaker.open_until = time.monotonic() + backoff_s
            log.warning(
                "server %s backed off for %.0f s after %d failures: %s",
                server.name,
                backoff_s,
                breaker.failures,
                exc.message,
            )

    def succeeded(self, server: ServerSpec) -> None:
        self._breakers.pop(server.server_id, None)

    def backoff_remaining_s(self, server_id: int) -> float:
        breaker = self._breakers.get(server_id)
        return max(0.0, breaker.open_until - time.monotonic()) if breaker else 0.0

    def forget(self, server_id: int) -> None:
        """Drop the server's idle connections and breaker (after it changed or went away)."""
        self._breakers.pop(server_id, None)
        for pooled in self._conns.pop(server_id, []):
            if pooled.active == 0:
                pooled.close()

    async def aclose(self) -> None:
        conns = [p for group in self._conns.values() for p in group]
        self._conns.clear()
        for pooled in conns:
            pooled.close()
        for pooled in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pooled.conn.wait_closed(), timeout=2)


def connect_error(server: ServerSpec, exc: BaseException, timeout_s: float) -> SshError:
    """Name a failed connection: each cause gets its own code and a message that says it."""
    if isinstance(exc, asyncssh.PermissionDenied):
        secret = "password" if server.auth_type == "password" else "key"
        return SshError(
            "auth_failed",
            f"authentication failed on {where(server)}: the server rejected the {secret}",
            permanent=True,
        )
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED
    ):
        return SshError(
            "connection_refused",
            f"connection refused by {where(server)}: is sshd running on port {server.port}?",
        )
    if isinstance(exc, TimeoutError):
        return SshError(
            "host_unreachable",
            f"host unreachable: {where(server)} did not answer within {timeout_s:g} s",
        )
    if isinstance(exc, socket.gaierror):
        return SshError(
            "host_unreachable", f"host unreachable: cannot resolve {server.host}: {exc}"
        )
    if isinstance(exc, OSError):
        return SshError(
            "host_unreachable", f"host unreachable: {where(server)}: {exc.strerror or exc}"
        )
    reason = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
    return SshError("ssh_error", f"SSH with {where(server)} failed: {reason}")


def _identity(server: ServerSpec) -> str:
    """What makes a pooled connection reusable: endpoint and credentials (hashed)."""
    digest = hashlib.sha256()
    for part in (
        server.host,
        str(server.port),
        server.username,
        server.auth_type,
        server.secret,
        server.passphrase or "",
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()
