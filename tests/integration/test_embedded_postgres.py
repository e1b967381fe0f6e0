"""The embedded PostgreSQL really starts, keeps its data, survives a kill -9 and stops."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cronium.db import embedded
from cronium.db.embedded import EmbeddedPostgres
from cronium.errors import ConfigError

pytestmark = pytest.mark.slow

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to another user")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir the server user can reach: pytest's tmp_path sits under a 0700 directory."""
    path = Path(tempfile.mkdtemp(prefix="cronium-pg-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[list[EmbeddedPostgres]]:
    """Instances to stop after the test, whatever it left running."""
    started: list[EmbeddedPostgres] = []
    yield started
    for server in reversed(started):
        server.stop()


def query(url: str, sql: str, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "data" / "postmaster.pid").read_text().splitlines()[0])


def running(pid: int) -> bool:
    """Whether pid runs; a zombie counts as gone (nothing reaps orphans in some containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while running(pid):
        assert time.monotonic() < deadline, f"pid {pid} still running"
        time.sleep(0.05)


def test_data_survives_stop_and_start(data_dir: Path, servers: list[EmbeddedPostgres]) -> None:
    pg = EmbeddedPostgres(data_dir)
    servers.append(pg)
    url = pg.start()
    assert url.startswith("postgresql+asyncpg://postgres@/cronium?host=")
    assert pg.url == url
    assert query(url, "SELECT current_database()") == [("cronium",)]
    query(url, "CREATE TABLE notes (body text)")
    query(url, "INSERT INTO notes VALUES ($1)", "kept")
    pid = postmaster_pid(data_dir)

    pg.stop()
    wait_gone(pid, timeout_s=1)
    assert not (data_dir / "postgres" / "data" / "postmaster.pid").exists()

    again = EmbeddedPostgres(data_dir)
    servers.append(again)
    assert query(again.start(), "SELECT body FROM notes") == [("kept",)]
    pid = postmaster_pid(data_dir)
    again.stop()
    wait_gone(pid, timeout_s=1)


def test_start_after_postmaster_killed(data_dir: Path, servers: list[EmbeddedPostgres]) -> None:
    crashed = EmbeddedPostgres(data_dir)
    servers.append(crashed)
    query(crashed.start(), "CREATE TABLE t AS SELECT 42 AS answer")
    pid = postmaster_pid(data_dir)
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)

    restarted = EmbeddedPostgres(data_dir)
    servers.append(restarted)
    url = restarted.start()
    assert postmaster_pid(data_dir) != pid
    assert query(url, "SELECT answer FROM t") == [(42,)]
    crashed.stop()  # its server is gone: must neither hang nor stop the new one
    assert query(url, "SELECT 1") == [(1,)]


def test_start_and_stop_are_idempotent(data_dir: Path, servers: list[EmbeddedPostgres]) -> None:
    pg = EmbeddedPostgres(data_dir)
    servers.append(pg)
    pg.stop()  # never started: harmless
    with pytest.raises(RuntimeError):
        _ = pg.url
    url = pg.start()
    assert pg.start() == url
    pid = postmaster_pid(data_dir)
    pg.stop()
    pg.stop()
    assert not running(pid)


def test_second_instance_reuses_running_server(
    data_dir: Path, servers: list[EmbeddedPostgres]
) -> None:
    owner, guest = EmbeddedPostgres(data_dir), EmbeddedPostgres(data_dir)
    servers.extend([owner, guest])
    url = owner.start()
    pid = postmaster_pid(data_dir)
    assert guest.start() == url
    guest.stop()  # did not start it, so must not stop it
    assert running(pid)
    assert query(url, "SELECT 1") == [(1,)]
    owner.stop()
    assert not running(pid)


def test_data_from_unknown_major_version_is_refused(data_dir: Path) -> None:
    pgdata = data_dir / "postgres" / "data"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("11\n")
    with pytest.raises(ConfigError, match="PostgreSQL 11"):
        EmbeddedPostgres(data_dir).start()


def test_long_data_dir_puts_socket_in_tmp(data_dir: Path, servers: list[EmbeddedPostgres]) -> None:
    deep = data_dir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    pg = EmbeddedPostgres(deep)
    servers.append(pg)
    url = pg.start()
    socket_dir = Path(url.split("host=", 1)[1])
    assert socket_dir.parent == Path("/tmp")
    assert socket_dir.stat().st_mode & 0o777 == 0o700
    assert query(url, "SELECT 1") == [(1,)]
    pg.stop()
    assert not socket_dir.exists()


def test_no_binaries_is_a_config_error(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_candidates", lambda: iter(()))
    with pytest.raises(ConfigError) as caught:
        EmbeddedPostgres(data_dir).start()
    assert caught.value.message == embedded.NO_BINARIES
    assert "set DATABASE_URL" in embedded.NO_BINARIES


def test_existing_data_gets_binaries_of_its_major_version(data_dir: Path) -> None:
    available = list(embedded._candidates())
    assert available, "the pgserver wheel is a dependency"
    for bins in available:
        assert embedded._find_binaries(bins.major, data_dir).major == bins.major


def test_failed_start_reports_the_server_log(
    data_dir: Path, servers: list[EmbeddedPostgres]
) -> None:
    pg = EmbeddedPostgres(data_dir)
    servers.append(pg)
    pg.start()
    pg.stop()
    with (data_dir / "postgres" / "data" / "postgresql.conf").open("a") as conf:
        conf.write("no_such_setting = 1\n")
    with pytest.raises(ConfigError, match=r"last lines of .*server\.log") as caught:
        pg.start()
    assert "no_such_setting" in caught.value.message


@as_root
def test_root_refuses_data_dir_server_user_cannot_enter(data_dir: Path) -> None:
    private = data_dir / "private"  # like /root, or pytest's own 0700 tmp_path parents
    private.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match=f"cannot enter {re.escape(str(private))}:"):
        EmbeddedPostgres(private / "cronium").start()


@as_root
def test_root_copies_unreachable_wheel_binaries(
    data_dir: Path, servers: list[EmbeddedPostgres], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = embedded._unreachable

    def venv_in_root_home(path: Path, user: Any) -> Path | None:
        return path if "site-packages" in str(path) else real(path, user)

    monkeypatch.setattr(embedded, "_unreachable", venv_in_root_home)
    pg = EmbeddedPostgres(data_dir)
    servers.append(pg)
    url = pg.start()
    assert query(url, "SELECT 1") == [(1,)]
    copy = data_dir / "postgres" / "pginstall"
    exe = Path(os.readlink(f"/proc/{postmaster_pid(data_dir)}/exe"))
    assert exe.is_relative_to(copy)
    assert (data_dir / "postgres" / "data").stat().st_uid != 0
