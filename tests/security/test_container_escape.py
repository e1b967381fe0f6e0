"""Escape attempts from inside a job: each test runs a hostile script as a real job (the
engine, the container executor, the cronium/* images) and checks what it achieved.

test_container_executor.py reads the container's configuration; these tests prove the
configuration holds: the root filesystem stays read-only, privileges cannot be raised,
there is no network, no Docker socket, no neighbour's files or processes, no host
environment, and a fork bomb or a memory hog ends with its job and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import socket
from datetime import datetime
from typing import Any

import aiodocker
import pytest
from sqlalchemy.engine import make_url

from cronium.config import Settings
from cronium.engine.node import Node
from cronium.executors.container import LABEL_EXECUTION
from tests.conftest import Api, wait_for_status
from tests.security.escape_probes import (
    FREEZE_INIT,
    NEIGHBOURS,
    NETWORK,
    PRIVILEGES,
    SOCKETS,
    WRITES,
    probe,
    report_of,
)
from tests.support.docker import *  # noqa: F403 (the Docker fixtures)
from tests.support.docker import containers_of
from tests.support.runs import create_event, log_lines, run

pytestmark = pytest.mark.slow

# What a refused attempt answers: no permission, no capability, or a read-only mount.
REFUSED = {"EPERM", "EACCES", "EROFS"}
NOBODY = "65534"


async def run_job(
    api: Api, content: str, *, language: str = "python", wait_s: float = 90, **fields: Any
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Run a script as a job to its end: (the execution, its log lines)."""
    name = f"probe-{secrets.token_hex(4)}"
    event_id = await create_event(api, name=name, language=language, content=content, **fields)
    execution_id = await run(api, event_id)
    done = await wait_for_status(api, execution_id, timeout_s=wait_s)
    return done, await log_lines(api, execution_id)


async def wait_for_line(api: Api, execution_id: int, line: str, timeout_s: float = 60) -> None:
    async with asyncio.timeout(timeout_s):
        while ("stdout", line) not in await log_lines(api, execution_id):
            await asyncio.sleep(0.1)


async def the_host_is_fine(api: Api, docker: aiodocker.Docker, node_id: str) -> None:
    """No container is left behind, and the next job runs as usual."""
    assert await containers_of(docker, node_id) == []
    done, lines = await run_job(api, "echo still fine", language="bash")
    assert done["status"] == "succeeded", (done, lines)
    assert ("stdout", "still fine") in lines
    assert await containers_of(docker, node_id) == []


def not_refused(attempts: dict[str, str]) -> dict[str, str]:
    return {what: outcome for what, outcome in attempts.items() if outcome not in REFUSED}


def duration_s(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started_at"])
    return (datetime.fromisoformat(job["finished_at"]) - started).total_seconds()


# -- the filesystem -------------------------------------------------------------------------


async def test_a_job_writes_only_to_its_own_scratch_space(
    api: dict[str, Api], container_node: Node, docker: aiodocker.Docker, test_node_id: str
) -> None:
    done, lines = await run_job(api["user"], probe(WRITES), resources={"memory_mb": 512})
    assert done["status"] == "succeeded", (done, lines)
    found = report_of(lines)
    assert not_refused(found["create"]) == {}, "the root filesystem took a new file"
    assert not_refused(found["modify"]) == {}, "an existing file (or the script) was writable"
    # Every directory was tried: only the per-job tmpfs mounts and the container's private
    # IPC mounts take a file, and none of them honours setuid bits or device files.
    assert found["writable"] == ["/dev/mqueue", "/dev/shm", "/tmp", "/work"]
    for directory, options in found["options"].items():
        assert {"nosuid", "nodev"} <= set(options), (directory, options)
    # The scratch space is bounded: a job fills it, not the host's disk.
    assert found["fill_error"] == "ENOSPC"
    assert 0 < found["filled_mib"] <= 256
    await the_host_is_fine(api["user"], docker, test_node_id)


# -- privileges -----------------------------------------------------------------------------


async def test_a_job_cannot_raise_its_privileges(
    api: dict[str, Api], container_node: Node, docker: aiodocker.Docker, test_node_id: str
) -> None:
    done, lines = await run_job(api["user"], probe(PRIVILEGES))
    assert done["status"] == "succeeded", (done, lines)
    found = report_of(lines)
    assert found["uids"] == found["gids"] == [NOBODY] * 4
    assert found["groups"] == [int(NOBODY)]
    assert found["caps"] == dict.fromkeys(
        ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), "0000000000000000"
    )
    assert found["no_new_privs"] == "1"
    # `su` is setuid root: with no-new-privileges it runs as nobody (else "65534 0 0 0").
    assert found["su_uids"] == [NOBODY] * 4
    # setuid `mount` sees a normal user: the setuid bit did nothing.
    code, message = found["mount_tool"]
    assert code != 0 and "must be superuser" in message[0], found["mount_tool"]
    assert found["unshare_tool"][0] != 0, found["unshare_tool"]
    assert not_refused(found["refused"]) == {}
    await the_host_is_fine(api["user"], docker, test_node_id)


async def test_a_job_that_stops_its_own_init_still_ends_at_its_timeout(
    api: dict[str, Api], container_node: Node, docker: aiodocker.Docker, test_node_id: str
) -> None:
    """ptrace reaches only the job's own processes (same user, same container): stopping
    its init hangs the container, and the timeout still ends it."""
    done, lines = await run_job(api["user"], probe(FREEZE_INIT), timeout_seconds=3, wait_s=60)
    found = report_of(lines)
    assert found == {"init": "/sbin/docker-init", "attach_init": "ok"}, found
    assert done["status"] == "timed_out", (done, lines)
    await the_host_is_fine(api["user"], docker, test_node_id)


# -- the network and sockets -------------------------------------------------------------------


def bridge_gateway(network: dict[str, Any]) -> str:
    config = network["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


async def test_a_job_without_egress_reaches_nothing(
    api: dict[str, Api],
    container_node: Node,
    docker: aiodocker.Docker,
    test_node_id: str,
    database_url: str,
) -> None:
    pg = make_url(database_url)
    gateway = bridge_gateway(await (await docker.networks.get("bridge")).show())
    abstract = f"cronium-escape-{secrets.token_hex(4)}"
    tcp = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    unix = await asyncio.start_unix_server(lambda r, w: w.close(), "\0" + abstract)
    try:
        # Listening on the host's loopback: a port of ours, and PostgreSQL when it is on TCP.
        loopback = [tcp.sockets[0].getsockname()[1]]
        if pg.host in ("127.0.0.1", "localhost"):
            loopback.append(pg.port or 5432)
        for port in loopback:  # the host itself reaches them: they are real targets
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with socket.socket(socket.AF_UNIX) as host_side:
            host_side.connect("\0" + abstract)
        targets = {
            "tcp": [*(["127.0.0.1", port] for port in loopback), [gateway, 5432], ["1.1.1.1", 443]],
            "udp": [[gateway, 53], ["1.1.1.1", 53]],
            "abstract": abstract,
            "names": ["example.com", "localhost.cronium.invalid"],
        }
        done, lines = await run_job(api["user"], probe(NETWORK), env={"PROBE": json.dumps(targets)})
    finally:
        tcp.close()
        unix.close()
    assert done["status"] == "succeeded", (done, lines)
    found = report_of(lines)
    assert found["interfaces"] == ["lo"]
    assert found["routes"] == []
    # 127.0.0.1 is the container's own loopback: the host's services are not there.
    assert found["tcp"] == {
        **{f"127.0.0.1:{port}": "ECONNREFUSED" for port in loopback},
        f"{gateway}:5432": "ENETUNREACH",
        "1.1.1.1:443": "ENETUNREACH",
    }
    assert found["udp"] == {f"{gateway}:53": "ENETUNREACH", "1.1.1.1:53": "ENETUNREACH"}
    # Abstract Unix sockets belong to a network namespace: the host's are out of reach.
    assert found["abstract"] == "ECONNREFUSED"
    assert all(answer.startswith("gaierror") for answer in found["dns"].values()), found["dns"]
    await the_host_is_fine(api["user"], docker, test_node_id)


async def test_the_runtime_socket_is_the_only_socket_and_serves_only_the_job(
    api: dict[str, Api],
    container_node: Node,
    docker: aiodocker.Docker,
    test_node_id: str,
    settings: Settings,
) -> None:
    owner_token = api["user"].persona.token  # a valid API token: still no REST over the socket
    done, lines = await run_job(api["user"], probe(SOCKETS), env={"OWNER_API_TOKEN": owner_token})
    assert done["status"] == "succeeded", (done, lines)
    found = report_of(lines)
    assert found["docker_sockets"] == {"/var/run/docker.sock": False, "/run/docker.sock": False}
    assert found["docker_host"] is None
    assert found["groups"] == [int(NOBODY)]
    assert found["docker_group"] not in found["groups"]
    socket_path = f"/run/cronium/{settings.runtime_socket_path.name}"
    assert found["runtime_url"] == f"unix://{socket_path}"
    assert found["sockets"] == [socket_path]
    # The socket file alone is mounted: nothing else of its host directory shows.
    assert found["runtime_dir"] == [settings.runtime_socket_path.name]
    status, context = found["own"]
    assert status == 200
    assert context["execution"]["id"] == done["id"]
    assert context["job"]["id"] == done["jobs"][0]["id"]
    for refused in ("no_token", "made_up"):
        assert found[refused][0] == 401, found[refused]
        assert found[refused][1]["error"]["code"] == "unauthorized"
    for other in ("rest_with_api_token", "metrics"):
        assert found[other][0] == 404, found[other]
        assert found[other][1]["error"]["message"] == "only /runtime/ is served on this socket"
    assert found["replace_socket"] in REFUSED
    assert found["create_next_to_it"] in REFUSED
    assert settings.runtime_socket_path.is_socket()
    await the_host_is_fine(api["user"], docker, test_node_id)


# -- neighbours and the host ------------------------------------------------------------------

HOST_SECRETS = {
    "CRONIUM_ENCRYPTION_KEY": "host-encryption-key-" + secrets.token_hex(8),
    "CRONIUM_SECRET_KEY": "host-secret-key-" + secrets.token_hex(8),
    "DATABASE_URL": "postgresql://cronium:host-db-password@127.0.0.1:5432/cronium",
}
# Host variables whose values a job may share by coincidence (the image sets its own).
COMMON = {"PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "TMPDIR", "HOSTNAME", "PWD", "OLDPWD"}
COMMON |= {"SHELL", "USER", "LOGNAME", "MAIL", "TERM", "TZ", "LS_COLORS", "SHLVL", "_"}


async def test_a_job_sees_no_other_job_and_nothing_of_the_host(
    api: dict[str, Api],
    container_node: Node,
    docker: aiodocker.Docker,
    test_node_id: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in HOST_SECRETS.items():
        monkeypatch.setenv(name, value)  # in the engine's own environment
    marker = f"cronium-neighbour-{secrets.token_hex(6)}"
    sleeper = f"3600.{secrets.randbelow(10**6):06d}"  # names the neighbour's process
    neighbour = (
        f'for d in /work /tmp /dev/shm; do echo "{marker}" > "$d/{marker}"; done\n'
        f"echo ready\nexec sleep {sleeper}\n"
    )
    neighbour_id = await run(api["other"], await create_event(api["other"], content=neighbour))
    await wait_for_line(api["other"], neighbour_id, "ready")
    found_containers = await containers_of(
        docker, test_node_id, {LABEL_EXECUTION: str(neighbour_id)}
    )
    info = await docker.containers.container(found_containers[0]["Id"]).show()
    host_pids = [int(info["State"]["Pid"]), os.getpid()]

    probe_env = {"PROBE": json.dumps({"marker": marker, "host_pids": host_pids})}
    done, lines = await run_job(api["user"], probe(NEIGHBOURS), env=probe_env)
    assert done["status"] == "succeeded", (done, lines)
    found = report_of(lines)

    # Files: the neighbour's scratch space, shared memory and script are not here.
    assert found["found_names"] == [] and found["found_in"] == []
    # Processes: only the job's own (its init and the probe); host pids do not exist.
    commands = found["processes"].values()
    assert found["processes"]["1"].startswith("/sbin/docker-init")
    assert all(c.startswith(("/sbin/docker-init", "python3")) for c in commands), commands
    assert not any(sleeper in c for c in commands)
    assert set(found["signal"].values()) == set(found["ptrace"].values()) == {"ESRCH"}
    # Environment: what the executor set, nothing of the engine's.
    for env in (found["env"], dict(v.split("=", 1) for v in found["init_env"] if "=" in v)):
        assert not set(env) & set(HOST_SECRETS), sorted(env)
    text = "\n".join(line for _, line in lines)
    host_values = [v for k, v in os.environ.items() if k not in COMMON and len(v) >= 12]
    host_values += [settings.encryption_key or "", settings.secret_key or ""]
    assert [v for v in [*host_values, settings.database_url or ""] if v and v in text] == []

    resp = await api["other"].post(f"/executions/{neighbour_id}/cancel")
    assert resp.status_code == 202, resp.text
    stopped = await wait_for_status(api["other"], neighbour_id, timeout_s=60)
    assert stopped["status"] == "cancelled"
    await the_host_is_fine(api["user"], docker, test_node_id)


# -- resource exhaustion ------------------------------------------------------------------------

FORK_BOMB = """
echo "pids.max=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
python3 - <<'PY'
import os, time
children = []
try:
    while len(children) < 10000:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    print(f"fork refused after {len(children)} children: {exc.strerror}", flush=True)
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
PY
bomb() { bomb | bomb & }
bomb 2>/dev/null
echo "bomb lit"
while :; do :; done
"""


async def test_a_fork_bomb_hits_the_pids_limit_and_ends_with_its_timeout(
    api: dict[str, Api],
    container_node: Node,
    docker: aiodocker.Docker,
    test_node_id: str,
    settings: Settings,
) -> None:
    timeout_s = 8
    done, lines = await run_job(
        api["user"],
        FORK_BOMB,
        language="bash",
        timeout_seconds=timeout_s,
        resources={"pids": 64, "cpu": 0.5, "memory_mb": 256},
        wait_s=timeout_s + 4 * settings.kill_grace_s + 30,
    )
    assert done["status"] == "timed_out", (done, lines)
    assert ("stdout", "pids.max=64") in lines
    refused = [text for stream, text in lines if text.startswith("fork refused after")]
    assert len(refused) == 1, lines
    children = int(refused[0].split()[3])
    assert 0 < children < 64 and refused[0].endswith("Resource temporarily unavailable")
    assert ("stdout", "bomb lit") in lines
    # Stopped by the timeout (SIGTERM, then SIGKILL after the grace period), not later.
    assert duration_s(done["jobs"][0]) < timeout_s + 2 * settings.kill_grace_s + 15
    await the_host_is_fine(api["user"], docker, test_node_id)


async def test_a_memory_hog_is_killed_by_its_limit_and_says_so(
    api: dict[str, Api], container_node: Node, docker: aiodocker.Docker, test_node_id: str
) -> None:
    """The executor-level test (test_container_executor.py) sees exit 137 and the line;
    here the whole run: the stored outcome, the log, and the host after it."""
    hog = "x = []\nwhile True:\n    x.append(bytearray(16 * 1024 * 1024))\n"
    done, lines = await run_job(api["user"], hog, resources={"memory_mb": 64})
    assert done["status"] == "failed", (done, lines)
    job = done["jobs"][0]
    assert job["exit_code"] == 137
    assert job["error"] == "exited with code 137"
    assert ("system", "the job was killed: out of memory (limit 64 MiB)") in lines
    await the_host_is_fine(api["user"], docker, test_node_id)
