"""Per-job log writer: mask, number, batch, persist, then wake live viewers.

Lines are persisted before anyone is told about them, so a viewer that resumes from the
database after a notification never misses or repeats a line. Memory is bounded: a
batch is flushed at `batch_lines` or every `flush_interval_s`, and output past the job's
byte cap is dropped after one system line that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from cronium.db.models import LogStream
from cronium.engine import queue
from cronium.logs.capture import Masker

log = logging.getLogger("cronium.logs")

DEFAULT_MAX_JOB_BYTES = 10 * 1024 * 1024


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
        self.lines_written = 0

    async def __call__(self, stream: LogStream, text: str) -> None:
        await self.write(stream, text)

    async def write(self, stream: LogStream, text: str) -> None:
        if self._truncated and stream is not LogStream.system:
            return
        size = len(text.encode()) + 1
        if stream is not LogStream.system and self._bytes + size > self._max_bytes:
            self._truncated = True
            cap_mib = self._max_bytes / (1024 * 1024)
            text = f"output exceeded {cap_mib:g} MiB: the rest of this job's output is discarded"
            stream = LogStream.system
        else:
            self._bytes += size
            text = self._masker.mask(text)
        self._pending.append((stream.value, datetime.now(UTC), text))
        if len(self._pending) >= self._batch_lines:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._interval_s)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            async with self._pool.acquire() as conn, conn.transaction():
                first = await queue.reserve_log_seq(conn, self.execution_id, len(batch))
                rows = [(first + i, s, ts, line) for i, (s, ts, line) in enumerate(batch)]
                await queue.append_logs(conn, self.execution_id, self.job_id, self.target, rows)
            self.lines_written += len(batch)
            if self._on_flush is not None:
                self._on_flush(self.execution_id, rows[-1][0])

    async def close(self) -> None:
        """Flush what is left; called once the job's output has ended."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        await self.flush()
