"""Live fan-out of "execution X has news" to viewers on this node.

Only ids travel: a viewer woken by the hub reads new lines from the database after the
last sequence number it sent. Wake-ups come from this node's log writers directly and from
other nodes through PostgreSQL NOTIFY. A slow viewer never slows a job: waking is setting
an event, never a blocking put.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


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

    def publish(self, execution_id: int, _seq: int | None = None) -> None:
        for event in self._waiters.get(execution_id, ()):
            event.set()

    def on_notify(self, payload: str) -> None:
        """Handle a `cronium_logs` ("<execution>:<seq>") or `cronium_status` ("<execution>")
        payload."""
        head = payload.split(":", 1)[0]
        if head.isdigit():
            self.publish(int(head))

    @property
    def watched(self) -> int:
        return len(self._waiters)
