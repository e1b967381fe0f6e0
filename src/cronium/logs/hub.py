"""Live fan-out of "execution X has news" to viewers on this node.

Only ids travel: a viewer woken by the hub reads new lines from the database after the
last sequence number it sent. Wake-ups come from this node's log writers directly and from
other nodes through PostgreSQL NOTIFY, and, when `VALKEY_URL` is set, also through a Valkey
channel (`ValkeyHub`). NOTIFY is always sent, so Valkey being down costs no wake-up. A slow
viewer never slows a job: waking is setting an event, never a blocking put.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cronium.services.valkey import ValkeyLink

log = logging.getLogger("cronium.hub")

CHANNEL = "cronium:live"
OUTBOX_MAX = 10_000


class LiveHub:
    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Event]] = defaultdict(set)

    def subscribe(self, execution_id: int) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[execution_id].add(event)
        return event

    def unsubscribe(self, execution_id: int, event: asyncio.Event) -> None:
        waiters = self._waiters.get(execution_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[execution_id]

    def wake(self, execution_id: int) -> None:
        """Wake this node's viewers of the execution."""
        for event in self._waiters.get(execution_id, ()):
            event.set()

    def wake_all(self) -> None:
        """Wake every viewer: they re-read from their last sequence number."""
        for events in self._waiters.values():
            for event in events:
                event.set()

    def publish(self, execution_id: int, _seq: int | None = None) -> None:
        self.wake(execution_id)

    def on_notify(self, payload: str) -> None:
        """Handle a `cronium_logs` ("<execution>:<seq>") or `cronium_status` ("<execution>")
        payload."""
        head = payload.split(":", 1)[0]
        if head.isdigit():
            self.wake(int(head))

    @property
    def watched(self) -> int:
        return len(self._waiters)

    async def start(self) -> None:
        """Start background work (none in process)."""

    async def close(self) -> None:
        """Stop background work."""


class ValkeyHub(LiveHub):
    """Also publishes each wake-up on a Valkey channel and wakes on other nodes' messages.

    Publishing never blocks the caller: ids go to a bounded outbox that a task sends. On a
    Valkey error the outbox is dropped (NOTIFY carries the same news) and, once Valkey is
    back, every viewer is woken once, since messages from the gap were lost.
    """

    def __init__(self, link: ValkeyLink, node_id: str) -> None:
        super().__init__()
        self._link = link
        self._node = node_id
        self._outbox: asyncio.Queue[int] = asyncio.Queue(OUTBOX_MAX)
        self._tasks: list[asyncio.Task[None]] = []
        self._resubscribe = asyncio.Event()
        link.on_up.append(self._on_up)

    def publish(self, execution_id: int, _seq: int | None = None) -> None:
        self.wake(execution_id)
        if self._link.usable:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(execution_id)

    def _on_up(self) -> None:
        self._resubscribe.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send(), name="valkey-hub-send"),
            asyncio.create_task(self._receive(), name="valkey-hub-receive"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _send(self) -> None:
        while True:
            execution_id = await self._outbox.get()
            client = self._link.client
            if client is None or not self._link.usable:
                continue
            try:
                await client.publish(CHANNEL, f"{self._node} {execution_id}")
            except Exception as exc:  # optional service: NOTIFY carries the news too
                self._link.down(exc)
                while not self._outbox.empty():
                    self._outbox.get_nowait()

    def _on_message(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        node, _, head = text.partition(" ")
        if node != self._node and head.isdigit():
            self.wake(int(head))

    async def _receive(self) -> None:
        client = self._link.client
        assert client is not None
        while True:
            if not self._link.usable:
                self._resubscribe.clear()
                await self._resubscribe.wait()
                continue
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.wake_all()  # anything published before we listened reaches viewers
                while self._link.usable:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._link.down(exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
