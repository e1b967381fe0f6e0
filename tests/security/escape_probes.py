"""Scripts that try to break out of a job container, run as jobs by test_container_escape.py.

Each probe is a Python script for the cronium/python image. It tries things a hostile job
would try and prints one line `REPORT {json}`: "ok" where an attempt worked, else the errno
name it failed with. The tests judge the report; the probes only try and tell.
"""

from __future__ import annotations

import json
from typing import Any

PRELUDE = r'''
import ctypes, errno, json, os, socket, stat, subprocess, sys, time

libc = ctypes.CDLL(None, use_errno=True)

def attempt(fn, *args):
    """'ok' when the call worked, else the name of the errno it failed with."""
    try:
        fn(*args)
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return "ok"

def raw(name, *args):
    """A libc call that answers -1 and sets errno on failure: 'ok' or the errno name."""
    ctypes.set_errno(0)
    if getattr(libc, name)(*args) == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return "ok"

def create(directory):
    path = os.path.join(directory, ".escape-probe")
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    os.unlink(path)

def fields(path):
    """A /proc status file as a dict."""
    lines = open(path).read().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)

def entries(directory):
    try:
        return os.listdir(directory)
    except OSError:
        return []

def tree(skip=("/proc", "/sys")):
    """Every directory of the filesystem the job sees, but the kernel's own views."""
    for root, dirs, _ in os.walk("/"):
        if root.startswith(skip):
            dirs[:] = []
            continue
        yield root

def report(**found):
    print("REPORT " + json.dumps(found, sort_keys=True), flush=True)
'''

WRITES = r"""
targets = ["/", "/usr", "/etc", "/bin", "/sbin", "/lib", "/var", "/root", "/home",
           "/var/tmp", "/run", "/opt/cronium", "/opt/cronium/sdk", "/run/cronium"]
existing = ["/etc/passwd", "/etc/hosts", "/etc/resolv.conf", "/usr/bin/python3.11",
            "/opt/cronium/script.py"]
mounts = {}
for line in open("/proc/self/mounts"):
    _, target, kind, options = line.split()[:4]
    mounts[target] = options.split(",")
writable = sorted(d for d in tree() if attempt(create, d) == "ok")
filled_mib, fill_error = 0, "none"
try:
    with open("/work/fill", "wb") as out:
        chunk = b"\0" * (1 << 20)
        while filled_mib < 1024:
            out.write(chunk)
            out.flush()
            filled_mib += 1
except OSError as exc:
    fill_error = errno.errorcode.get(exc.errno)
os.unlink("/work/fill")
report(
    create={t: attempt(create, t) for t in targets},
    modify={p: attempt(open, p, "ab") for p in existing},
    writable=writable,
    options={d: mounts.get(d, []) for d in writable},
    filled_mib=filled_mib,
    fill_error=fill_error,
)
"""

PRIVILEGES = r"""
status = fields("/proc/self/status")
os.mkdir("/tmp/m")
open("/tmp/f", "w").close()

# su is setuid root. Waiting for its password it shows the uids it runs with: without
# no-new-privileges the effective uid would be 0.
su = subprocess.Popen(["su", "-c", "id", "root"], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
su_uids = "exited"
for _ in range(100):
    try:
        su_status = fields(f"/proc/{su.pid}/status")
    except OSError:
        break
    su_uids = su_status["Uid"].split()
    if su_status["State"].startswith("S"):
        break
    time.sleep(0.05)
su.kill()
su.communicate()

machine = os.uname().machine
modules = {"x86_64": (175, 313, 176), "aarch64": (105, 273, 106)}[machine]
blob = ctypes.create_string_buffer(64)
mount = subprocess.run(["mount", "-t", "tmpfs", "none", "/tmp/m"], capture_output=True, text=True)
unshare = subprocess.run(["unshare", "-r", "id"], capture_output=True, text=True)

def first(*paths):
    return next(p for p in paths if os.path.exists(p))

pids_max = first("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
memory_max = first("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")

def write(path, data):
    with open(path, "w") as out:
        out.write(data)

report(
    caps={k: status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    no_new_privs=status["NoNewPrivs"],
    uids=status["Uid"].split(), gids=status["Gid"].split(), groups=os.getgroups(),
    su_uids=su_uids,
    mount_tool=[mount.returncode, mount.stderr.splitlines()[:1]],
    unshare_tool=[unshare.returncode, unshare.stderr.strip()],
    refused={
        "setuid(0)": attempt(os.setuid, 0),
        "setgid(0)": attempt(os.setgid, 0),
        "mount": raw("mount", b"none", b"/tmp/m", b"tmpfs", 0, None),
        "chown to root": attempt(os.chown, "/tmp/f", 0, 0),
        "unshare user": raw("unshare", 0x10000000),
        "unshare mount": raw("unshare", 0x00020000),
        "unshare net": raw("unshare", 0x40000000),
        "unshare pid": raw("unshare", 0x20000000),
        "raw inet socket": attempt(socket.socket, socket.AF_INET, socket.SOCK_RAW, 1),
        "packet socket": attempt(socket.socket, socket.AF_PACKET, socket.SOCK_RAW, 0),
        # Set to now: harmless should it ever work.
        "set the clock": attempt(time.clock_settime, time.CLOCK_REALTIME, time.time()),
        "sethostname": raw("sethostname", b"escaped", 7),
        "init_module": raw("syscall", modules[0], blob, 64, b""),
        "finit_module": raw("syscall", modules[1], -1, b"", 0),
        "delete_module": raw("syscall", modules[2], b"overlay", 0),
        "mknod /dev/mem": attempt(os.mknod, "/tmp/mem", stat.S_IFCHR | 0o600, os.makedev(1, 1)),
        "chroot": attempt(os.chroot, "/tmp"),
        "write /proc/sys": attempt(write, "/proc/sys/kernel/hostname", "escaped"),
        "raise the pids limit": attempt(write, pids_max, "max"),
        "raise the memory limit": attempt(write, memory_max, "max"),
    },
)
"""

NETWORK = r"""
def connect(host, port):
    with socket.create_connection((host, port), timeout=5):
        pass

def send_udp(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (host, port))

def connect_abstract(name):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect("\0" + name)

def resolve(name):
    try:
        socket.getaddrinfo(name, 443)
    except socket.gaierror as exc:
        return f"gaierror {exc.errno}"
    return "ok"

probe = json.loads(os.environ["PROBE"])
report(
    interfaces=sorted(os.listdir("/sys/class/net")),
    routes=open("/proc/net/route").read().splitlines()[1:],
    tcp={f"{h}:{p}": attempt(connect, h, p) for h, p in probe["tcp"]},
    udp={f"{h}:{p}": attempt(send_udp, h, p) for h, p in probe["udp"]},
    abstract=attempt(connect_abstract, probe["abstract"]),
    dns={name: resolve(name) for name in probe["names"]},
)
"""

SOCKETS = r"""
import grp, http.client

SOCK = os.environ["CRONIUM_RUNTIME_URL"].removeprefix("unix://")

class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(SOCK)

def call(path, token=None):
    conn = Unix("cronium", timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    resp = conn.getresponse()
    body = resp.read().decode()
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return [resp.status, body]

def docker_group():
    try:
        return grp.getgrnam("docker").gr_gid
    except KeyError:
        return None

own = os.environ["CRONIUM_EXECUTION_TOKEN"]
def is_socket(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False

sockets = [os.path.join(d, n) for d in tree() for n in entries(d) if is_socket(os.path.join(d, n))]
report(
    docker_sockets={p: os.path.lexists(p) for p in ("/var/run/docker.sock", "/run/docker.sock")},
    docker_host=os.environ.get("DOCKER_HOST"),
    docker_group=docker_group(),
    groups=os.getgroups(),
    sockets=sockets,
    runtime_url=os.environ["CRONIUM_RUNTIME_URL"],
    runtime_dir=sorted(entries(os.path.dirname(SOCK))),
    own=call("/runtime/v1/context", own),
    no_token=call("/runtime/v1/context"),
    made_up=call("/runtime/v1/context", "cxt_" + "A" * 43),
    rest_with_api_token=call("/api/v1/events", os.environ["OWNER_API_TOKEN"]),
    metrics=call("/metrics"),
    replace_socket=attempt(os.unlink, SOCK),
    create_next_to_it=attempt(create, os.path.dirname(SOCK)),
)
"""

NEIGHBOURS = r"""
probe = json.loads(os.environ["PROBE"])
marker = probe["marker"]
PTRACE_ATTACH = 16
processes = {}
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            processes[name] = open(f"/proc/{name}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            pass
def init_env():
    # PID 1's environment (in a shared pid namespace it would not be ours to read).
    try:
        return open("/proc/1/environ", "rb").read().decode(errors="replace").split("\0")
    except OSError as exc:
        return [f"unreadable={errno.errorcode.get(exc.errno)}"]

found_names = [os.path.join(d, n) for d in tree() for n in entries(d) if marker in n]
found_in = []
for place in ("/work", "/tmp", "/dev/shm", "/opt/cronium", "/run/cronium"):
    for root, _, files in os.walk(place):
        for name in files:
            path = os.path.join(root, name)
            try:
                if marker.encode() in open(path, "rb").read():
                    found_in.append(path)
            except OSError:
                pass
report(
    processes=processes,
    found_names=found_names,
    found_in=found_in,
    signal={str(pid): attempt(os.kill, pid, 0) for pid in probe["host_pids"]},
    ptrace={str(pid): raw("ptrace", PTRACE_ATTACH, pid, None, None) for pid in probe["host_pids"]},
    env=dict(os.environ),
    init_env=init_env(),
)
"""

FREEZE_INIT = r"""
PTRACE_ATTACH = 16
# Attaching stops PID 1 (the container's init); leaving without detaching keeps it
# stopped, so the container can no longer end by itself.
report(init=open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode(),
       attach_init=raw("ptrace", PTRACE_ATTACH, 1, None, None))
"""


def probe(body: str) -> str:
    """The full script of a probe: the shared helpers, then its body."""
    return PRELUDE + body


def report_of(lines: list[tuple[str, str]]) -> dict[str, Any]:
    """The probe's REPORT line, parsed; fails with the whole log when there is none."""
    for stream, text in lines:
        if stream == "stdout" and text.startswith("REPORT "):
            found: dict[str, Any] = json.loads(text.removeprefix("REPORT "))
            return found
    raise AssertionError(f"the probe printed no report: {lines}")
