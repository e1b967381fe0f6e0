"""A private redis-server (the Valkey stand-in) on a free loopback port.

Tests that stop Valkey start their own server, so stopping it disturbs nobody. Without the
binary they skip; with CRONIUM_TEST_REQUIRE_ALL=1 they fail.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import REQUIRE_ALL
from tests.support.tool_receivers import free_port


class RedisServer:
    def __init__(self, binary: str, port: int) -> None:
        self.binary, self.port = binary, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(200):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            time.sleep(0.025)
        pytest.fail(f"redis-server did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def redis_binary() -> str:
    """The redis-server (or valkey-server) binary; skips, or fails under REQUIRE_ALL, without."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        reason = "redis-server (or valkey-server) is not installed"
        if REQUIRE_ALL:
            pytest.fail(f"{reason} (CRONIUM_TEST_REQUIRE_ALL=1)")
        pytest.skip(reason)
    return binary


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), free_port())
    server.start()
    yield server
    server.stop()
