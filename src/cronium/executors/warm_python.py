"""Python jobs of the local executor, forked from a warm interpreter (pyfork_server.py).

Starting CPython with the SDK pre-loaded costs 12-47 ms and the SDK's first call another
~15 ms of imports; a fork of an interpreter that has both done costs about a millisecond.
The job then looks as if `python3 -u script` had started it: its own session and process
group, its own directory, environment, stdin/stdout/stderr, `__main__`, `sys.argv`, exit
code. Used only when the job's environment cannot change how the interpreter starts (no
PYTHON* variables of its own); otherwise, or when the warm interpreter is not available,
the executor spawns as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("cronium.executors")

SERVER = Path(__file__).with_name("pyfork_server.py")
# Variables that decide how CPython starts (paths, flags, hashing): a job that sets its
# own would be run differently by the warm interpreter, so it is spawned instead.
_START_VARIABLES = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED"})
_READ_LIMIT = 1024 * 1024
MAX_FAILURES = 3


@dataclass
class ForkedProcess:
    """The few parts of asyncio.subprocess.Process the local executor uses."""

    pid: int
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    exit: asyncio.Future[int]
    transports: list[asyncio.BaseTransport] = field(default_factory=list)

    @property
    def returncode(self) -> int | None:
        return self.exit.result() if self.exit.done() and not self.exit.cancelled() else None

    async def wait(self) -> int:
        return await asyncio.shield(self.exit)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, 9)

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


class WarmPython:
    """One warm interpreter per executor, started on first use and again if it dies."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command = command  # interpreter + flags, e.g. [python3, -u]
        self.env = env  # its start-up environment: PYTHONPATH etc. as the jobs'
        self._process: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[int], asyncio.Future[int]]] = {}
        self._next_id = 0
        self._lock = asyncio.Lock()
        self.failures = 0  # in a row; at MAX_FAILURES the executor stops trying

    def suits(self, env: dict[str, str]) -> bool:
        """Whether a job with this environment may be forked rather than spawned."""
        if self.failures >= MAX_FAILURES:
            return False
        for key, value in env.items():
            if key.startswith("PYTHON") and (
                key not in _START_VARIABLES or self.env.get(key) != value
            ):
                return False
        return all(env.get(k) == self.env.get(k) for k in _START_VARIABLES)

    async def _ensure(self) -> socket.socket:
        async with self._lock:
            if self._sock is not None and self._process is not None:
                if self._process.returncode is None:
                    return self._sock
                self._close()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *self.command,
                    str(SERVER),
                    str(theirs.fileno()),
                    env=self.env,
                    pass_fds=(theirs.fileno(),),
                    stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:
                ours.close()
                raise
            finally:
                theirs.close()
            ours.setblocking(False)
            self._sock = ours
            self._reader = asyncio.create_task(self._read(ours), name="warm-python-replies")
            return ours

    async def _read(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    break
                reply: dict[str, Any] = json.loads(data)
                futures = self._pending.get(int(reply["id"]))
                if futures is None:
                    continue
                started, ended = futures
                if "pid" in reply and not started.done():
                    started.set_result(int(reply["pid"]))
                if "exit" in reply:
                    self._pending.pop(int(reply["id"]), None)
                    if not ended.done():
                        ended.set_result(int(reply["exit"]))
        except (OSError, ValueError) as exc:
            log.warning("warm Python stopped answering: %s", exc)
        finally:
            self._fail_pending()

    def _fail_pending(self) -> None:
        # Its children die with it (PDEATHSIG): a job that had started ends as killed.
        for started, ended in self._pending.values():
            if not started.done():
                started.set_exception(ConnectionError("the warm Python went away"))
                started.exception()  # start() may be gone already: mark it seen
            if not ended.done():
                ended.set_result(128 + 9)
        self._pending.clear()

    async def start(self, script: Path, cwd: Path, env: dict[str, str]) -> ForkedProcess:
        """Fork a job; raises OSError/ConnectionError when forking is not possible now."""
        sock = await self._ensure()
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        self._next_id += 1
        job = self._next_id
        started: asyncio.Future[int] = loop.create_future()
        ended: asyncio.Future[int] = loop.create_future()
        self._pending[job] = (started, ended)
        request = json.dumps({"id": job, "script": str(script), "cwd": str(cwd), "env": env})
        try:
            socket.send_fds(sock, [request.encode()], [null, out_w, err_w])
        except OSError:
            self._pending.pop(job, None)
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        try:
            pid = await asyncio.wait_for(started, timeout=10)
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            self.failures += 1
            if self.failures == MAX_FAILURES:
                log.warning(
                    "the warm Python failed %d times in a row: no longer used", MAX_FAILURES
                )
            raise
        self.failures = 0
        stdout, out_transport = await _reader(loop, out_r)
        stderr, err_transport = await _reader(loop, err_r)
        return ForkedProcess(pid, stdout, stderr, ended, [out_transport, err_transport])

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._process = None

    async def aclose(self) -> None:
        process = self._process
        self._close()
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), timeout=5)


async def _reader(
    loop: asyncio.AbstractEventLoop, fd: int
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    reader = asyncio.StreamReader(limit=_READ_LIMIT, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0)
    )
    return reader, transport


def available() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds")
