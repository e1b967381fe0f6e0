"""Embedded PostgreSQL: a real server Cronium runs inside CRONIUM_DATA_DIR when no DATABASE_URL.

``<data_dir>/postgres`` holds ``data`` (PGDATA, kept across restarts), ``server.log``, ``run``
(the Unix socket dir, or a private ``/tmp/cronium-pg-*`` when that path is too long for a socket)
and, only if needed as root, ``pginstall``. The server has no TCP listener and trusts local
connections, so the socket dir is private (0700, owned by the server's user).

PostgreSQL refuses to run as root, so as root it runs as the user ``cronium`` (or ``nobody``).
That user must be able to traverse every parent of ``<data_dir>/postgres``; if it cannot, start()
raises ConfigError naming the directory rather than loosen permissions Cronium does not own.
Wheel binaries it cannot reach (a venv under /root) are copied once into ``pginstall``, keeping
the site-packages layout so their RPATH ($ORIGIN/../../../pgserver.libs) still finds libpq.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from cronium.errors import ConfigError

log = logging.getLogger(__name__)

PORT = 5432  # only names the socket file: no TCP listener is opened
TIMEOUT_S = 60
NO_BINARIES = (
    "no PostgreSQL binaries found: install the pgserver wheel or PostgreSQL, or set DATABASE_URL"
)
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_LOG_ROTATE_BYTES = 10 * 1024 * 1024


class _Binaries(NamedTuple):
    bin_dir: Path
    major: str
    wheel_libs: Path | None  # pgserver.libs (libpq); None for a system install


class _User(NamedTuple):
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


class _Postmaster(NamedTuple):
    pid: int
    port: int
    socket_dir: Path
    status: str


class EmbeddedPostgres:
    """Start, reuse and stop the PostgreSQL server that lives in ``<data_dir>/postgres``."""

    def __init__(self, data_dir: Path, *, database: str = "cronium") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.database = database
        self._home = self.data_dir / "postgres"
        self._pgdata = self._home / "data"
        self._log = self._home / "server.log"
        self._url: str | None = None
        self._started: tuple[_Binaries, int] | None = None  # binaries + pid of a server we started
        self._user: _User | None = None
        self._tmp_socket_dir: Path | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("EmbeddedPostgres.url read before start()")
        return self._url

    def start(self) -> str:
        """Start the server (or reuse one already serving this PGDATA); return its URL."""
        if self._url is not None:
            return self._url
        try:
            self._home.mkdir(parents=True, exist_ok=True)
            with _locked(self._home / "start.lock"):  # a second cronium waits, then reuses
                pm = self._running() or _Postmaster(0, PORT, self._start_server(), "ready")
            _ensure_database(pm.socket_dir, pm.port, self.database)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, OSError):
                raise ConfigError(f"embedded PostgreSQL in {self._home}: {exc}") from None
            raise
        self._url = _url(pm.socket_dir, pm.port, self.database)
        return self._url

    def stop(self) -> None:
        """Fast-stop the server this instance started; a reused server is left running."""
        started, self._started, self._url = self._started, None, None
        try:
            pm = _read_postmaster(self._pgdata) if started is not None else None
            # Not if it died (pg_ctl would wait 60 s on a zombie) or another server replaced it.
            if started is not None and pm is not None and pm.pid == started[1] and _alive(pm.pid):
                cmd: list[str | Path] = [started[0].bin_dir / "pg_ctl", "stop", "-D", self._pgdata]
                _run([*cmd, "-m", "fast", "-w", "-t", str(TIMEOUT_S)], self._user, self._home)
        except (ConfigError, OSError) as exc:
            log.warning("stopping embedded PostgreSQL: %s", exc)
        finally:
            if self._tmp_socket_dir is not None:
                shutil.rmtree(self._tmp_socket_dir, ignore_errors=True)
                self._tmp_socket_dir = None

    def _running(self) -> _Postmaster | None:
        """A live postmaster on our PGDATA (e.g. another cronium process), once it accepts."""
        deadline = time.monotonic() + TIMEOUT_S
        while (pm := _read_postmaster(self._pgdata)) is not None and _alive(pm.pid):
            if _connectable(pm.socket_dir / f".s.PGSQL.{pm.port}"):
                return pm
            if pm.status not in ("", "starting", "stopping") or time.monotonic() > deadline:
                return None  # a recycled pid, or a server that never came up: start our own
            time.sleep(0.2)
        return None

    def _start_server(self) -> Path:
        version = _read_text(self._pgdata / "PG_VERSION")
        bins = _find_binaries(version, self._pgdata)
        user = _server_user()
        if user is not None:
            bins = self._prepare_for(user, bins)
        if version is None:
            self._initdb(bins, user)
        socket_dir = self._socket_dir(user)
        for lock in (self._pgdata / "postmaster.pid", socket_dir / f".s.PGSQL.{PORT}.lock"):
            _clear_stale_lock(lock)
        if self._log.exists() and self._log.stat().st_size > _LOG_ROTATE_BYTES:
            self._log.replace(self._log.with_suffix(".log.1"))
        self._log.touch()
        _chown(self._log, user)
        opts = f"-p {PORT} -k {shlex.quote(str(socket_dir))} -c listen_addresses=''"
        cmd: list[str | Path] = [bins.bin_dir / "pg_ctl", "start", "-D", self._pgdata, "-w"]
        try:
            _run([*cmd, "-t", str(TIMEOUT_S), "-l", self._log, "-o", opts], user, self._home)
        except ConfigError as exc:
            tail = "\n".join(self._log.read_text(errors="replace").splitlines()[-20:])
            raise ConfigError(f"{exc.message}\nlast lines of {self._log}:\n{tail}") from None
        pm = _read_postmaster(self._pgdata)
        self._started, self._user = (bins, pm.pid if pm is not None else 0), user
        return socket_dir

    def _prepare_for(self, user: _User, bins: _Binaries) -> _Binaries:
        """As root: let the server user reach the data dir and the binaries, and own PGDATA."""
        self._home.chmod(0o755)
        if (blocked := _unreachable(self._home, user)) is not None:
            raise ConfigError(
                f"PostgreSQL cannot run as root and runs as user {user.name!r}, who cannot enter "
                f"{blocked}: set CRONIUM_DATA_DIR outside it (e.g. /var/lib/cronium), "
                f"allow it (chmod o+x {blocked}), or set DATABASE_URL"
            )
        libs = bins.wheel_libs
        if _unreachable(bins.bin_dir, user) or (
            libs and libs.is_dir() and _unreachable(libs, user)
        ):
            if bins.wheel_libs is None:
                raise ConfigError(f"user {user.name!r} cannot run the binaries in {bins.bin_dir}")
            bins = _copy_wheel(bins, self._home / "pginstall")
        if self._pgdata.exists() and self._pgdata.stat().st_uid != user.uid:
            for path in [self._pgdata, *self._pgdata.rglob("*")]:
                _chown(path, user)
        return bins

    def _initdb(self, bins: _Binaries, user: _User | None) -> None:
        """initdb into a scratch dir renamed into place, so a killed initdb never leaves junk."""
        scratch = self._home / "data.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        _chown(scratch, user)
        flags = ["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"]
        _run([bins.bin_dir / "initdb", "-D", scratch, *flags], user, self._home)
        scratch.rename(self._pgdata)

    def _socket_dir(self, user: _User | None) -> Path:
        path = self._home / "run"
        if len(os.fsencode(path / f".s.PGSQL.{PORT}")) < _MAX_SOCKET_PATH:
            path.mkdir(mode=0o700, exist_ok=True)
            path.chmod(0o700)
        else:
            tmp = "/tmp" if os.path.isdir("/tmp") else None
            path = self._tmp_socket_dir = Path(tempfile.mkdtemp(prefix="cronium-pg-", dir=tmp))
        _chown(path, user)
        return path


def _find_binaries(version: str | None, pgdata: Path) -> _Binaries:
    """The first binary set (pgserver wheel first) whose major matches existing data, if any."""
    need = _major(version) if version is not None else None
    found: list[str] = []
    for bins in _candidates():
        if need is None or bins.major == need:
            return bins
        found.append(f"{bins.major} ({bins.bin_dir})")
    if not found:
        raise ConfigError(NO_BINARIES)
    raise ConfigError(
        f"the data in {pgdata} needs PostgreSQL {need}, but only found PostgreSQL "
        f"{', '.join(found)}: install PostgreSQL {need} binaries, or set DATABASE_URL"
    )


def _candidates() -> Iterator[_Binaries]:
    dirs: list[tuple[Path, Path | None]] = []
    spec = importlib.util.find_spec("pgserver")  # finds the wheel without importing it
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        dirs.append((package / "pginstall" / "bin", package.parent / "pgserver.libs"))
    if (on_path := shutil.which("pg_ctl")) is not None:
        dirs.append((Path(on_path).resolve().parent, None))
    system = Path("/usr/lib/postgresql").glob("*/bin")
    by_version = sorted(system, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    dirs += [(d, None) for d in reversed(by_version)]
    seen: set[Path] = set()
    for bin_dir, libs in dirs:
        tools = [bin_dir / tool for tool in ("initdb", "pg_ctl", "postgres")]
        if bin_dir.resolve() in seen or not all(tool.is_file() for tool in tools):
            continue
        seen.add(bin_dir.resolve())
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [tools[1], "--version"], capture_output=True, text=True, timeout=10
            )
            if (major := _major(out.stdout.split("(PostgreSQL)")[-1])) is not None:
                yield _Binaries(bin_dir, major, libs)


def _major(version: str) -> str | None:
    """'16.2' -> '16', '9.6.24' -> '9.6': data is only compatible within a major version."""
    if (m := re.search(r"(\d+)(?:\.(\d+))?", version)) is None:
        return None
    return m[1] if int(m[1]) >= 10 or m[2] is None else f"{m[1]}.{m[2]}"


def _server_user() -> _User | None:
    """Who runs PostgreSQL: ourselves, or an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("cronium", "nobody"):
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return _User(name, pw.pw_uid, pw.pw_gid, tuple(os.getgrouplist(name, pw.pw_gid)))
    raise ConfigError(
        "running as root, but there is no 'cronium' or 'nobody' user to run PostgreSQL"
    )


def _unreachable(path: Path, user: _User) -> Path | None:
    """The first directory from / down to path that user may not traverse, if any."""
    for directory in [*reversed(path.resolve().parents), path.resolve()]:
        st = directory.stat()
        if st.st_uid == user.uid:
            allowed = st.st_mode & stat.S_IXUSR
        else:
            allowed = st.st_mode & (stat.S_IXGRP if st.st_gid in user.groups else stat.S_IXOTH)
        if not allowed:
            return directory
    return None


def _copy_wheel(bins: _Binaries, dest: Path) -> _Binaries:
    """Copy pgserver's bin/lib/share and pgserver.libs to dest, readable by everyone, once."""
    stamp = f"{bins.bin_dir} {(bins.bin_dir / 'postgres').stat().st_mtime_ns}"
    copied = _Binaries(dest / "pgserver" / "pginstall" / "bin", bins.major, dest / "pgserver.libs")
    if _read_text(dest / ".source") == stamp:
        return copied
    scratch = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=dest.parent))
    for part in ("bin", "lib", "share"):
        target = scratch / "pgserver" / "pginstall" / part
        shutil.copytree(bins.bin_dir.parent / part, target, symlinks=True)
    if bins.wheel_libs is not None and bins.wheel_libs.is_dir():
        shutil.copytree(bins.wheel_libs, scratch / "pgserver.libs", symlinks=True)
    for root, _, files in os.walk(scratch):
        os.chmod(root, 0o755)
        for file in (Path(root, name) for name in files if not Path(root, name).is_symlink()):
            file.chmod(0o755 if file.stat().st_mode & stat.S_IXUSR else 0o644)
    (scratch / ".source").write_text(stamp)
    shutil.rmtree(dest, ignore_errors=True)
    scratch.rename(dest)
    return copied


def _run(cmd: Sequence[str | Path], user: _User | None, cwd: Path) -> None:
    """Run a PostgreSQL tool (as the server user when root); ConfigError with its output."""
    what = " ".join(str(part) for part in cmd[:2])
    ids: dict[str, Any] = {}
    if user is not None:
        ids = {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGPORT etc.
    # The postmaster may inherit pg_ctl's pipes, hanging capture_output: use a file instead.
    with tempfile.TemporaryFile("w+") as out:
        try:
            proc = subprocess.run(
                [str(part) for part in cmd], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=cwd, env=env, timeout=2 * TIMEOUT_S, **ids,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"{what} failed: {exc}") from None
        out.seek(0)
        output = out.read().strip()
    if proc.returncode != 0:
        raise ConfigError(f"{what} failed (exit {proc.returncode}): {output[-2000:]}")


def _ensure_database(socket_dir: Path, port: int, name: str) -> None:
    """Create the application database on first start (in a thread: callers may be async)."""

    async def create() -> None:
        url = _url(socket_dir, port, "postgres")
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                query = text("SELECT 1 FROM pg_database WHERE datname = :name")
                if await conn.scalar(query, {"name": name}) is None:
                    quoted = name.replace('"', '""')
                    await conn.exec_driver_sql(f'CREATE DATABASE "{quoted}"')
        finally:
            await engine.dispose()

    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(create())).result()
    except Exception as exc:
        raise ConfigError(f"embedded PostgreSQL: cannot create database {name!r}: {exc}") from None


def _url(socket_dir: Path, port: int, database: str) -> str:
    port_part = "" if port == PORT else f"&port={port}"
    host = quote(str(socket_dir), safe="/")
    return f"postgresql+asyncpg://postgres@/{quote(database, safe='')}?host={host}{port_part}"


def _read_postmaster(pgdata: Path) -> _Postmaster | None:
    """postmaster.pid lines: pid, datadir, start time, port, socket dir, host, shmem key, status."""
    lines = (_read_text(pgdata / "postmaster.pid") or "").splitlines()
    if len(lines) < 5 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None
    status = lines[7].strip() if len(lines) > 7 else ""
    return _Postmaster(int(lines[0]), int(lines[3]), Path(lines[4].strip()), status)


def _clear_stale_lock(path: Path) -> None:
    """Drop a dead process's lock file: postgres itself mistakes an un-reaped zombie for live."""
    pid = (_read_text(path) or "").partition("\n")[0].strip()
    if pid.isdigit() and not _alive(int(pid)):
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether pid runs; a zombie (a killed postmaster nobody reaped, as in containers) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill()


def _connectable(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _chown(path: Path, user: _User | None) -> None:
    if user is not None:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
