"""The optional Valkey connection (`VALKEY_URL`): detected at start, reconnected in the
background, never required.

Users (the rate limiter, the live hub) ask `usable` before each operation and report a
failed operation with `down()`; they then fall back to their in-process path at once,
without waiting for a timeout again, until the watcher sees Valkey answer and switches
back. Only loopback-fast operations go through here: every call has a short timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlparse

import valkey.asyncio as valkey

log = logging.getLogger("cronium.valkey")

State = Literal["ok", "absent", "error"]
CONNECT_TIMEOUT_S = 1.0
OP_TIMEOUT_S = 0.5
WATCH_INTERVAL_S = 1.0
BACKOFF_MAX_S = 5.0


def where(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"


class ValkeyLink:
    def __init__(
        self,
        url: str | None,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        op_timeout_s: float = OP_TIMEOUT_S,
        watch_interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self.url = url
        self.op_timeout_s = op_timeout_s
        self._watch_interval_s = watch_interval_s
        self.state: State = "absent"
        self.reason: str | None = "VALKEY_URL not set: in-process cache, limits and pub/sub"
        self.client: valkey.Valkey | None = None
        if url:
            self.client = valkey.Valkey.from_url(
                url,
                socket_connect_timeout=connect_timeout_s,
                socket_timeout=op_timeout_s,
                retry_on_timeout=False,
                retry=None,
            )
            self.state, self.reason = "error", "not connected yet"
        # Called when Valkey comes back (messages sent meanwhile were lost).
        self.on_up: list[Callable[[], None]] = []
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.state == "ok"

    @property
    def backend(self) -> str:
        """What this process uses right now: "valkey" or "memory"."""
        return "valkey" if self.usable else "memory"

    def down(self, exc: BaseException | str) -> None:
        """An operation failed: use the in-process path until Valkey answers again."""
        if self.client is None:
            return
        reason = exc if isinstance(exc, str) else _reason(exc)
        was_ok = self.state == "ok"
        self.state, self.reason = "error", f"Valkey not reachable at {self._where}: {reason}"
        if was_ok:
            log.warning("%s: using in-process fallbacks", self.reason)
            self._kick.set()  # start the reconnect backoff now

    def kick(self) -> None:
        """Try to reconnect now rather than at the next backoff step."""
        self._kick.set()

    @property
    def _where(self) -> str:
        return where(self.url or "")

    async def _ping(self) -> None:
        assert self.client is not None
        async with asyncio.timeout(self.op_timeout_s * 2):
            await self.client.ping()

    async def start(self) -> None:
        """First detection (short timeout), then watch in the background."""
        if self.client is None:
            return
        await self._check()
        if self.state == "ok":
            log.info("Valkey at %s: shared rate limits and live-log pub/sub", self._where)
        else:
            log.warning(
                "%s; using in-process fallbacks and retrying in the background", self.reason
            )
        self._task = asyncio.create_task(self._watch(), name="valkey-watch")

    async def _check(self) -> None:
        try:
            await self._ping()
        except Exception as exc:  # any failure: Valkey is optional, report and go on
            self.down(exc)
            return
        if self.state != "ok":
            was_error = self.reason != "not connected yet"
            self.state, self.reason = "ok", None
            if was_error:
                log.info("Valkey at %s is back: switching to it", self._where)
            for callback in self.on_up:
                try:
                    callback()
                except Exception:
                    log.exception("Valkey reconnect callback failed")

    async def _watch(self) -> None:
        backoff = 0.1
        while True:
            wait = self._watch_interval_s if self.state == "ok" else backoff
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._kick.wait()
            self._kick.clear()
            await self._check()
            backoff = 0.1 if self.state == "ok" else min(backoff * 2, BACKOFF_MAX_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}".rstrip(": ")
