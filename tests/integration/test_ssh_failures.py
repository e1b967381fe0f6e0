"""SSH runs that go wrong, and runs on several servers at once (real sshd on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from cronium.core import Core
from tests.conftest import Api, wait_for_status
from tests.support.runs import create_event, log_lines, run
from tests.support.sshd import (
    SshHost,
    add_server,
    restricted_path,
    ssh_event,
    ssh_user,
    sshd_factory,
)

__all__ = ["ssh_user", "sshd_factory"]

HostFactory = Callable[..., SshHost]


async def failed_job(user: Api, event_id: int) -> dict[str, object]:
    body = await wait_for_status(user, await run(user, event_id), timeout_s=30)
    assert body["status"] == "failed", body
    job = body["jobs"][0]  # type: ignore[index]
    assert isinstance(job, dict)
    return job


@pytest.fixture
async def mute_port() -> AsyncIterator[int]:
    """A loopback port that accepts TCP and never says a word: a host that does not answer."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read()
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()


async def test_connection_refused(user: Api, node: object, sshd_factory: HostFactory) -> None:
    host = sshd_factory("refusing")
    server_id = await add_server(user, host)
    host.kill()
    job = await failed_job(user, await ssh_event(user, [server_id], "echo hi"))
    assert "connection refused" in str(job["error"])


async def test_unreachable_host_times_out(
    user: Api, node: object, core: Core, sshd_factory: HostFactory, mute_port: int
) -> None:
    core.ssh.connect_timeout_s = 1.0
    host = sshd_factory("mute")
    host.port = mute_port
    server_id = await add_server(user, host)
    job = await failed_job(user, await ssh_event(user, [server_id], "echo hi"))
    assert "host unreachable" in str(job["error"]) and "did not answer within 1 s" in str(
        job["error"]
    )


async def test_authentication_failed(user: Api, node: object, sshd_factory: HostFactory) -> None:
    host = sshd_factory("strict")
    host.user.password = "not-the-password"
    try:
        server_id = await add_server(user, host, password=True)
    finally:
        from tests.support.sshd import TEST_PASSWORD

        host.user.password = TEST_PASSWORD
    job = await failed_job(user, await ssh_event(user, [server_id], "echo hi"))
    assert "authentication failed" in str(job["error"])
    assert job["attempt"] == 1


async def test_host_key_mismatch_is_refused_before_login(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("pinned")
    server_id = await add_server(user, host)
    event_id = await ssh_event(user, [server_id], "echo first")
    body = await wait_for_status(user, await run(user, event_id))
    assert body["status"] == "succeeded"
    host.new_host_key()  # the server was reinstalled, or someone sits in between
    job = await failed_job(user, event_id)
    assert "host key mismatch" in str(job["error"]) and "re-pin" in str(job["error"])
    server = (await user.get(f"/servers/{server_id}")).json()
    assert server["host_key_fingerprint"] != host.fingerprint  # the old pin stays


async def test_wrong_fingerprint_given_up_front(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("fp")
    wrong = "SHA256:" + "A" * 43
    server_id = await add_server(user, host, host_key_fingerprint=wrong)
    job = await failed_job(user, await ssh_event(user, [server_id], "echo hi"))
    assert "host key mismatch" in str(job["error"]) and host.fingerprint in str(job["error"])


async def test_right_fingerprint_given_up_front(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("fp-ok")
    server_id = await add_server(user, host, host_key_fingerprint=host.fingerprint)
    body = await wait_for_status(user, await run(user, await ssh_event(user, [server_id], "true")))
    assert body["status"] == "succeeded"


async def test_interpreter_missing(user: Api, node: object, sshd_factory: HostFactory) -> None:
    bin_dir = restricted_path(["sh", "bash", "mktemp", "mkdir", "setsid", "rm", "dirname", "cat"])
    host = sshd_factory("bare", session_path=str(bin_dir))
    server_id = await add_server(user, host)
    job = await failed_job(
        user, await ssh_event(user, [server_id], "print(1)", language="python", retries=2)
    )
    assert "python3 is not installed on bare" in str(job["error"])
    assert job["attempt"] == 1  # permanent: not retried


async def test_killed_sshd_mid_run_ends_the_job_and_the_remote_script(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("doomed")
    server_id = await add_server(user, host)
    event_id = await ssh_event(user, [server_id], "echo up; sleep 303; echo never")
    execution_id = await run(user, event_id)
    for _ in range(200):
        if ("stdout", "up") in await log_lines(user, execution_id):
            break
        await asyncio.sleep(0.05)
    assert host.leftovers()  # the script runs in its job dir on the host
    host.kill()
    body = await wait_for_status(user, execution_id, timeout_s=15)
    assert body["status"] == "failed"
    assert "lost" in str(body["jobs"][0]["error"])  # type: ignore[index]
    assert await host.wait_clean() == []


async def test_breaker_backs_off_a_failing_host(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("flaky")
    server_id = await add_server(user, host)
    host.kill()
    event_id = await ssh_event(user, [server_id], "echo hi")
    errors = [str((await failed_job(user, event_id))["error"]) for _ in range(4)]
    assert all("connection refused" in e for e in errors[:3])
    assert "backed off" in errors[3] and "3 failures in a row" in errors[3]


async def test_three_servers_one_lost_gives_partial(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    hosts = [sshd_factory(name) for name in ("web-1", "web-2", "web-3")]
    server_ids = [await add_server(user, host) for host in hosts]
    script = """
import os, time
ctx = cronium.event()
print("hello from", os.uname().nodename, ctx["job"]["target"] if "job" in ctx else "")
cronium.set_variable("seen-" + os.environ["CRONIUM_JOB_ID"], True)
if cronium.input().get("slow_target") == ctx["job"]["target"]:
    print("waiting", flush=True)
    time.sleep(304)
cronium.set_condition(True)
cronium.output({"ok": True})
"""
    follow_up = await create_event(user, name="after-fanout", content="echo after")
    event_id = await ssh_event(
        user,
        server_ids,
        script,
        language="python",
        name="fanout",
        targets={"local": True, "server_ids": server_ids},
        actions=[{"on": "always", "type": "run_event", "event_id": follow_up}],
    )
    execution_id = await run(user, event_id, input={"slow_target": "web-3"})
    for _ in range(300):
        if ("stdout", "waiting") in await log_lines(user, execution_id):
            break
        await asyncio.sleep(0.05)
    hosts[2].kill()
    body = await wait_for_status(user, execution_id, timeout_s=30)
    assert body["status"] == "partial", body
    jobs = {job["target"]: job for job in body["jobs"]}  # type: ignore[union-attr]
    assert {t: j["status"] for t, j in jobs.items()} == {
        "local": "succeeded",
        "web-1": "succeeded",
        "web-2": "succeeded",
        "web-3": "failed",
    }
    logs = (await user.get(f"/executions/{execution_id}/logs?limit=500")).json()["items"]
    targets = {item["target"] for item in logs if item["stream"] == "stdout"}
    assert targets == {"local", "web-1", "web-2", "web-3"}
    await asyncio.sleep(1)  # a second firing would have been enqueued by now
    follow_ups = (await user.get("/executions", params={"event_id": follow_up})).json()
    assert follow_ups["total"] == 1  # the action fired once for the execution, not per job
    for host in hosts:
        assert await host.wait_clean() == []


async def test_per_host_cap_serialises_jobs(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("narrow")
    server_id = await add_server(user, host, max_concurrent_jobs=1)
    event_id = await ssh_event(
        user, [server_id], 'echo "start $EPOCHREALTIME"; sleep 0.5; echo "end $EPOCHREALTIME"'
    )
    executions = [await run(user, event_id) for _ in range(3)]
    spans = []
    saw_wait = False
    for execution_id in executions:
        body = await wait_for_status(user, execution_id, timeout_s=30)
        assert body["status"] == "succeeded"
        lines = await log_lines(user, execution_id)
        stamps = {
            line.split()[0]: float(line.split()[1]) for stream, line in lines if stream == "stdout"
        }
        spans.append((stamps["start"], stamps["end"]))
        saw_wait |= any("waiting for a free slot" in line for _, line in lines)
    spans.sort()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert saw_wait


async def test_a_silent_server_ends_the_job_within_the_keepalive_bound(
    user: Api, node: object, core: Core, sshd_factory: HostFactory
) -> None:
    core.ssh.keepalive_s = 0.5  # read when the connection opens: bound 3 x 0.5 s
    host = sshd_factory("frozen")
    server_id = await add_server(user, host)
    event_id = await ssh_event(user, [server_id], "echo up; sleep 305", timeout_seconds=120)
    execution_id = await run(user, event_id)
    for _ in range(200):
        if ("stdout", "up") in await log_lines(user, execution_id):
            break
        await asyncio.sleep(0.05)
    sessions = host.freeze()  # TCP stays open, nothing answers: a host that vanished
    try:
        started = asyncio.get_running_loop().time()
        body = await wait_for_status(user, execution_id, timeout_s=20)
        elapsed_s = asyncio.get_running_loop().time() - started
    finally:
        host.kill()  # its sessions end, so the runner on the host sees EOF
    assert sessions
    assert body["status"] == "failed"
    assert "lost" in str(body["jobs"][0]["error"])  # type: ignore[index]
    assert elapsed_s < 15  # far below the 120 s timeout: the keepalive noticed
    assert await host.wait_clean() == []
