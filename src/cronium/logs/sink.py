"""Per-job log writer: mask, number, batch, persist, then wake live viewers.

Lines are persisted before anyone is told about them, so a viewer that resumes from the
database after a notification never misses or repeats a line. Memory is bounded: a
batch is flushed at `batch_lines` or every `flush_interval_s`, and output past the job's
byte cap is dropped after one system line that says so. The cap also bounds what is kept
while the database is unreachable: a failed batch waits for the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from cronium import metrics
from cronium.db.models import LogStream
from cronium.db.session import DB_UNAVAILABLE
from cronium.engine import queue
from cronium.logs.capture import Masker

log = logging.getLogger("cronium.logs")

DEFAULT_MAX_JOB_BYTES = 10 * 1024 * 1024
# After a failed flush, wait this long before the next attempt. close() tries this often,
# about 30 s in all: long enough to ride out a PostgreSQL restart or failover (the job's
# result waits for the database anyway), short enough that a database gone for good
# costs the lines rather than the slot.
RETRY_AFTER_S = 1.0
CLOSE_ATTEMPTS = 30


def _size(n: int) -> str:
    """10485760 → "10 MiB", 65536 → "64 KiB", 100000 → "100000 bytes": exact, never rounded."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


class JobLogWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        execution_id: int,
        job_id: int | None,
        target: str,
        masker: Masker,
        on_flush: Callable[[int, int], None] | None = None,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        batch_lines: int = 500,
        flush_interval_s: float = 0.05,
    ) -> None:
        self._pool = pool
        self.execution_id = execution_id
        self.job_id = job_id
        self.target = target
        self._masker = masker
        self._on_flush = on_flush
        self._max_bytes = max_job_bytes
        self._batch_lines = batch_lines
        self._interval_s = flush_interval_s
        self._pending: list[tuple[str, datetime, str]] = []
        self._bytes = 0
        self._truncated = False
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._retry_at = 0.0  # after a failed flush, the next attempt waits until then
        self.lines_written = 0
        self.lines_lost = 0

    async def __call__(self, stream: LogStream, text: str) -> None:
        await self.write(stream, text)

    async def write(self, stream: LogStream, text: str) -> None:
        if self._truncated and stream is not LogStream.system:
            return
        size = len(text.encode()) + 1
        if stream is not LogStream.system and self._bytes + size > self._max_bytes:
            self._truncated = True
            cap = _size(self._max_bytes)
            text = f"output exceeded {cap}: the rest of this job's output is discarded"
            stream = LogStream.system
        else:
            self._bytes += size
            text = self._masker.mask(text)
        self._pending.append((stream.value, datetime.now(UTC), text))
        if len(self._pending) >= self._batch_lines and time.monotonic() >= self._retry_at:
            # Shielded: a reader cancelled at the end of a job must not abort a batch
            # mid-transaction (its lines are already out of `_pending`).
            await asyncio.shield(self.flush())
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        delay_s = max(self._interval_s, self._retry_at - time.monotonic())
        await asyncio.sleep(delay_s)
        self._timer = None
        await self.flush()
        if self._pending and self._timer is None:  # the database failed: try again later
            self._timer = asyncio.create_task(self._flush_later())

    async def flush(self) -> bool:
        """Persist the pending lines; False if the database failed (they stay pending).

        A database error never reaches the output reader: a reader that stopped would leave
        the job blocked on a full pipe. Pending lines stay bounded by the job's output cap.
        """
        async with self._lock:
            if not self._pending:
                return True
            batch, self._pending = self._pending, []
            try:
                async with self._pool.acquire() as conn:
                    last = await queue.store_logs(
                        conn, self.execution_id, self.job_id, self.target, batch
                    )
            except asyncio.CancelledError:
                self._pending = batch + self._pending  # close() retries them
                raise
            except Exception as exc:  # whatever failed, the batch is not stored: keep it
                if not isinstance(exc, DB_UNAVAILABLE):
                    log.exception("storing log lines failed unexpectedly")
                self._pending = batch + self._pending
                self._retry_at = time.monotonic() + RETRY_AFTER_S
                log.warning(
                    "cannot store %d log lines of execution %s yet: %s",
                    len(self._pending),
                    self.execution_id,
                    exc,
                    extra={"action": "log_flush_failed"},
                )
                return False
            self._retry_at = 0.0
            self.lines_written += len(batch)
            metrics.logs_stored(batch)
            if self._on_flush is not None and last is not None:
                self._on_flush(self.execution_id, last)
            return True

    async def close(self) -> None:
        """Flush what is left; called once the job's output has ended.

        If the database stays unreachable for CLOSE_ATTEMPTS tries, the remaining lines are
        dropped (and counted in `lines_lost`): the job's result must still be recorded.
        """
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        for attempt in range(CLOSE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_AFTER_S)
            if await self.flush():
                return
        self.lines_lost += len(self._pending)
        log.error(
            "dropped %d log lines of execution %s: the database is unreachable",
            len(self._pending),
            self.execution_id,
            extra={"action": "log_lines_lost"},
        )
        self._pending.clear()
