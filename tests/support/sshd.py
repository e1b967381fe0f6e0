"""Real OpenSSH servers on 127.0.0.1 for the ssh executor's tests.

Each `SshHost` is its own `sshd -D` on a random port with a generated host key, logging
in the unprivileged test user (`cronium-ssh`, created when missing) by a generated
ed25519 key or a password. Needs root (sshd, useradd) and OpenSSH's server
(`apt-get install openssh-server`; `.ci/run` does it). Without them these tests skip, or
fail under CRONIUM_TEST_REQUIRE_ALL=1.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import Api

REQUIRE_ALL = os.environ.get("CRONIUM_TEST_REQUIRE_ALL") == "1"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
TEST_USER = "cronium-ssh"
TEST_PASSWORD = "cronium-ssh-test-password"

__all__ = ["SshHost", "remote_leftovers", "ssh_user", "sshd_factory", "start_sshd"]


def _unavailable(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"OpenSSH server is required (CRONIUM_TEST_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


def _keygen(path: Path, kind: str = "ed25519", passphrase: str = "", fmt: str = "") -> str:
    args = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-f", str(path), "-C", ""]
    if fmt:
        args += ["-m", fmt]
    subprocess.run(args, check=True, capture_output=True)
    return path.read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SshUser:
    name: str
    password: str
    key_dir: Path
    private_key: str  # OpenSSH ed25519, no passphrase
    public_key: str

    def make_key(self, kind: str, passphrase: str = "", fmt: str = "") -> tuple[str, str]:
        """Another login key (authorised on every host started afterwards)."""
        path = self.key_dir / f"extra_{kind}_{len(list(self.key_dir.iterdir()))}"
        private = _keygen(path, kind, passphrase, fmt)
        public = Path(f"{path}.pub").read_text().strip()
        return private, public


@dataclass
class SshHost:
    name: str
    port: int
    directory: Path
    host_public_key: str  # "ssh-ed25519 AAAA…"
    fingerprint: str  # SHA256:…
    user: SshUser
    authorized: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    def start(self) -> None:
        (self.directory / "authorized_keys").write_text("\n".join(self.authorized) + "\n")
        (self.directory / "authorized_keys").chmod(0o644)
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"sshd exited: {err}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                if sock.recv(4).startswith(b"SSH-"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"sshd on port {self.port} did not come up")

    def kill(self) -> None:
        """Kill the server and every session process it started (like a host going away)."""
        if self.process is None:
            return
        master = self.process.pid
        for pid in _children(master):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    @property
    def tmp(self) -> Path:
        return self.directory / "tmp"

    def leftovers(self) -> list[str]:
        """What this host's jobs left: job dirs in its TMPDIR, processes running in them."""
        return [*(p.name for p in self.tmp.iterdir()), *remote_leftovers(str(self.tmp))]

    async def wait_clean(self, timeout_s: float = 5.0) -> list[str]:
        """The leftovers once they are gone, or what is still there after `timeout_s`."""
        import asyncio

        deadline = time.monotonic() + timeout_s
        while (left := self.leftovers()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return left

    def freeze(self) -> list[int]:
        """SIGSTOP the server's session processes: connections stay open, nothing answers."""
        if self.process is None:
            return []
        sessions = _children(self.process.pid)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return sessions

    def new_host_key(self) -> None:
        """Replace the host key (a reinstalled server) and restart."""
        self.kill()
        for path in self.directory.glob("host_ed25519*"):
            path.unlink()
        _keygen(self.directory / "host_ed25519")
        self.host_public_key, self.fingerprint = _host_key(self.directory)
        self.start()


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (sshd's per-connection processes)."""
    found: list[int] = []
    parents = {pid}
    changed = True
    while changed:
        changed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid in parents and int(entry.name) not in parents:
                found.append(int(entry.name))
                parents.add(int(entry.name))
                changed = True
    # sshd session processes only: never the user's job processes (they must die by themselves)
    sshd_only = []
    for child in found:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().strip().startswith("sshd"):
                sshd_only.append(child)
    return sshd_only


def _host_key(directory: Path) -> tuple[str, str]:
    public = (directory / "host_ed25519.pub").read_text().split()
    line = f"{public[0]} {public[1]}"
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(directory / "host_ed25519.pub")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return line, out[1]


def ensure_user() -> None:
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", TEST_USER],
            check=True,
            capture_output=True,
        )
    subprocess.run(
        ["chpasswd"],
        input=f"{TEST_USER}:{TEST_PASSWORD}\n".encode(),
        check=True,
        capture_output=True,
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


@pytest.fixture(scope="session")
def ssh_user() -> Iterator[SshUser]:
    if os.geteuid() != 0:
        _unavailable("the sshd tests need root (to run sshd and create the test user)")
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        _unavailable("OpenSSH server not installed (apt-get install openssh-server)")
    try:
        ensure_user()
    except (OSError, subprocess.CalledProcessError) as exc:
        _unavailable(f"cannot create the test user {TEST_USER}: {exc}")
    key_dir = Path(tempfile.mkdtemp(prefix="cronium-sshkeys-"))
    private = _keygen(key_dir / "id_ed25519")
    public = (key_dir / "id_ed25519.pub").read_text().strip()
    yield SshUser(TEST_USER, TEST_PASSWORD, key_dir, private, public)
    shutil.rmtree(key_dir, ignore_errors=True)


def start_sshd(
    user: SshUser, name: str, extra_keys: list[str] | None = None, session_path: str = ""
) -> SshHost:
    """A started sshd; `session_path` replaces PATH in its sessions (a host missing tools)."""
    extra_config = f" PATH={session_path}" if session_path else ""
    directory = Path(tempfile.mkdtemp(prefix="cronium-sshd-"))
    directory.chmod(0o755)
    # Each host's sessions get their own TMPDIR, so its job dirs (mktemp -d) and processes
    # can be told apart from other tests' hosts running at the same time.
    (directory / "tmp").mkdir()
    (directory / "tmp").chmod(0o1777)
    _keygen(directory / "host_ed25519")
    public, fp = _host_key(directory)
    port = _free_port()
    (directory / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {directory}/host_ed25519
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers {user.name}
AllowStreamLocalForwarding yes
AllowTcpForwarding remote
StreamLocalBindUnlink yes
X11Forwarding no
Subsystem sftp internal-sftp
MaxStartups 200:30:400
LogLevel ERROR
SetEnv TMPDIR={directory}/tmp{extra_config}
"""
    )
    host = SshHost(
        name, port, directory, public, fp, user, authorized=[user.public_key, *(extra_keys or [])]
    )
    host.start()
    return host


@pytest.fixture
def sshd_factory(ssh_user: SshUser) -> Iterator[object]:
    """`sshd_factory(name)` starts one more server; all stop after the test."""
    started: list[SshHost] = []

    def factory(
        name: str = "host", extra_keys: list[str] | None = None, session_path: str = ""
    ) -> SshHost:
        host = start_sshd(ssh_user, name, extra_keys, session_path)
        started.append(host)
        return host

    yield factory
    for host in started:
        host.kill()
        shutil.rmtree(host.directory, ignore_errors=True)


def restricted_path(commands: list[str]) -> Path:
    """A bin dir holding only `commands` (symlinks): a host where the others are missing."""
    bin_dir = Path(tempfile.mkdtemp(prefix="cronium-bin-"))
    bin_dir.chmod(0o755)
    for command in commands:
        found = shutil.which(command)
        if found:
            (bin_dir / command).symlink_to(found)
    return bin_dir


def remote_leftovers(marker: str) -> list[str]:
    """Processes of the test user whose command line mentions `marker`, and job dirs."""
    uid = pwd.getpwnam(TEST_USER).pw_uid
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        if marker in cmdline or marker in cwd:
            found.append(f"pid {entry.name}: {cmdline}")
    return found


async def add_server(api: Api, host: SshHost, *, password: bool = False, **extra: object) -> int:
    auth: dict[str, object] = (
        {"type": "password", "password": host.user.password}
        if password
        else {"type": "key", "private_key": host.user.private_key}
    )
    body = {
        "name": host.name,
        "host": "127.0.0.1",
        "port": host.port,
        "username": host.user.name,
        "auth": auth,
        **extra,
    }
    resp = await api.post("/servers", json=body)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def ssh_event(api: Api, server_ids: list[int], content: str, **fields: object) -> int:
    from tests.support.runs import create_event

    fields.setdefault("targets", {"local": False, "server_ids": server_ids})
    return await create_event(api, content=content, **fields)
