"""One LISTEN connection per node, reconnecting; dispatches NOTIFY payloads by channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from cronium.db.session import DB_UNAVAILABLE, asyncpg_dsn

log = logging.getLogger("cronium.listener")

Handler = Callable[[str], None]


class Listener:
    def __init__(
        self, database_url: str, handlers: dict[str, list[Handler]], reconnect_s: float = 1.0
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._handlers = handlers
        self._reconnect_s = reconnect_s
        self.connected = asyncio.Event()
        # Called after every (re)connect: notifications sent meanwhile were lost.
        self.on_reconnect: list[Callable[[], None]] = []

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("NOTIFY handler for %s failed", channel)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in self._handlers:
                    await conn.add_listener(channel, self._dispatch)
                self.connected.set()
                for callback in self.on_reconnect:
                    callback()
                await _first(stop.wait(), lost.wait())
            except DB_UNAVAILABLE as exc:
                log.warning("LISTEN connection failed (%s); retrying", exc)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    await conn.close(timeout=2)
            if not stop.is_set():
                await asyncio.sleep(self._reconnect_s)


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
