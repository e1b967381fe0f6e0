"""Events on real OpenSSH servers (127.0.0.1, random ports): the ssh executor end to end."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import pytest

from tests.conftest import Api, wait_for_status
from tests.support.runs import log_lines, run
from tests.support.sshd import (
    SshHost,
    SshUser,
    add_server,
    ssh_event,
    ssh_user,
    sshd_factory,
)

__all__ = ["ssh_user", "sshd_factory"]

HostFactory = Callable[..., SshHost]


async def test_bash_runs_on_a_server_and_pins_its_key(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("alpha")
    server_id = await add_server(user, host)
    event_id = await ssh_event(
        user, [server_id], 'echo "hello from $(whoami) in $CRONIUM_EXECUTION_MODE"; echo err >&2'
    )
    execution_id = await run(user, event_id)
    body = await wait_for_status(user, execution_id)
    assert body["status"] == "succeeded", body
    lines = await log_lines(user, execution_id)
    assert ("stdout", "hello from cronium-ssh in ssh") in lines
    assert ("stderr", "err") in lines
    server = (await user.get(f"/servers/{server_id}")).json()
    assert server["host_key_fingerprint"] == host.fingerprint
    assert body["jobs"][0]["target"] == "alpha"
    assert await host.wait_clean() == []


async def test_exit_code_is_kept(user: Api, node: object, sshd_factory: HostFactory) -> None:
    host = sshd_factory("beta")
    server_id = await add_server(user, host, password=True)
    event_id = await ssh_event(user, [server_id], "echo before; exit 7")
    body = await wait_for_status(user, await run(user, event_id))
    assert body["status"] == "failed"
    assert body["jobs"][0]["exit_code"] == 7


async def test_python_sdk_over_the_forwarded_socket(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("gamma")
    server_id = await add_server(user, host)
    script = """
import json
data = cronium.input()
cronium.set_variable("ssh-counter", {"n": data["n"] + 1})
print("variable", json.dumps(cronium.get_variable("ssh-counter")))
cronium.set_condition(True)
print("condition", cronium.get_condition())
print("event", cronium.event()["event"]["name"])
cronium.output({"doubled": data["n"] * 2})
"""
    event_id = await ssh_event(user, [server_id], script, language="python", name="sdk-ssh")
    execution_id = await run(user, event_id, input={"n": 20})
    body = await wait_for_status(user, execution_id)
    assert body["status"] == "succeeded", (body, await log_lines(user, execution_id))
    lines = [line for stream, line in await log_lines(user, execution_id) if stream == "stdout"]
    assert lines == ['variable {"n": 21}', "condition True", "event sdk-ssh"]
    assert body["output"] == {"doubled": 40}
    assert body["condition"] is True


async def test_node_script_runs(user: Api, node: object, sshd_factory: HostFactory) -> None:
    host = sshd_factory("delta")
    server_id = await add_server(user, host)
    event_id = await ssh_event(
        user,
        [server_id],
        "console.log('node', process.version.startsWith('v')); cronium.output({ok: 1})",
        language="node",
    )
    execution_id = await run(user, event_id)
    body = await wait_for_status(user, execution_id)
    assert body["status"] == "succeeded", await log_lines(user, execution_id)
    assert ("stdout", "node true") in await log_lines(user, execution_id)
    assert body["output"] == {"ok": 1}


async def test_secrets_never_on_a_command_line(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("epsilon")
    server_id = await add_server(user, host)
    event_id = await ssh_event(
        user,
        [server_id],
        "cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 's3cr3t-valu[e]' || true;"
        ' test "$MY_SECRET" = s3cr3t-value && echo env-ok',
        env={"MY_SECRET": "s3cr3t-value"},
    )
    execution_id = await run(user, event_id)
    body = await wait_for_status(user, execution_id)
    assert body["status"] == "succeeded"
    lines = [line for stream, line in await log_lines(user, execution_id) if stream == "stdout"]
    assert lines == ["0", "env-ok"]


async def test_timeout_kills_the_remote_process_group(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("zeta")
    server_id = await add_server(user, host)
    event_id = await ssh_event(
        user,
        [server_id],
        "sleep 300 & sleep 301; echo never",
        timeout_seconds=2,
    )
    execution_id = await run(user, event_id)
    body = await wait_for_status(user, execution_id, timeout_s=30)
    assert body["status"] == "timed_out"
    assert await host.wait_clean() == []  # both sleeps ran in the job dir: gone too


async def test_cancel_stops_the_remote_job(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("eta")
    server_id = await add_server(user, host)
    event_id = await ssh_event(user, [server_id], "echo started; sleep 302")
    execution_id = await run(user, event_id)
    for _ in range(200):
        if ("stdout", "started") in await log_lines(user, execution_id):
            break
        await asyncio.sleep(0.05)
    resp = await user.post(f"/executions/{execution_id}/cancel")
    assert resp.status_code in (200, 202), resp.text
    body = await wait_for_status(user, execution_id, timeout_s=30)
    assert body["status"] == "cancelled"
    assert await host.wait_clean() == []


async def test_env_file_quoting_survives_odd_values(
    user: Api, node: object, sshd_factory: HostFactory
) -> None:
    host = sshd_factory("theta")
    server_id = await add_server(user, host)
    odd = 'it\'s $(not run) `nor this` "quoted"\nsecond line'
    event_id = await ssh_event(
        user,
        [server_id],
        "import os, hashlib; print(hashlib.sha256(os.environ['ODD'].encode()).hexdigest())",
        language="python",
        env={"ODD": odd},
    )
    execution_id = await run(user, event_id)
    body = await wait_for_status(user, execution_id)
    assert body["status"] == "succeeded", await log_lines(user, execution_id)
    lines = [line for stream, line in await log_lines(user, execution_id) if stream == "stdout"]
    assert lines == [hashlib.sha256(odd.encode()).hexdigest()]


@pytest.mark.parametrize(
    ("kind", "passphrase", "fmt"),
    [("rsa", "", "PEM"), ("rsa", "rsa-pass", ""), ("ecdsa", "", ""), ("ed25519", "ed-pass", "")],
    ids=["rsa-pem", "rsa-openssh-passphrase", "ecdsa", "ed25519-passphrase"],
)
async def test_every_key_type_logs_in(
    user: Api,
    node: object,
    ssh_user: SshUser,
    sshd_factory: HostFactory,
    kind: str,
    passphrase: str,
    fmt: str,
) -> None:
    private, public = ssh_user.make_key(kind, passphrase, fmt)
    host = sshd_factory(f"key-{kind}", extra_keys=[public])
    auth: dict[str, object] = {"type": "key", "private_key": private}
    if passphrase:
        auth["passphrase"] = passphrase
    resp = await user.post(
        "/servers",
        json={
            "name": host.name,
            "host": "127.0.0.1",
            "port": host.port,
            "username": ssh_user.name,
            "auth": auth,
        },
    )
    assert resp.status_code == 201, resp.text
    event_id = await ssh_event(user, [resp.json()["id"]], f"echo {kind}-ok")
    execution_id = await run(user, event_id)
    body = await wait_for_status(user, execution_id)
    assert body["status"] == "succeeded", body
    assert ("stdout", f"{kind}-ok") in await log_lines(user, execution_id)
