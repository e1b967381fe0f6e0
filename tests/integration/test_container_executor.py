"""The container executor against a real Docker engine and the locally built cronium/* images:
scripts of every language through the engine, hardening seen by `docker inspect` and from
inside, timeout and cancel leave nothing behind, a missing image fails fast and clearly,
leftovers are removed, CRONIUM_EXECUTOR picks what answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from cronium.config import Settings
from cronium.db.models import LogStream
from cronium.engine.node import Node
from cronium.errors import ConfigError
from cronium.executors.base import ExecutorError, JobResult, JobSpec
from cronium.executors.container import (
    LABEL_EXECUTION,
    LABEL_INSTALLATION,
    LABEL_JOB,
    LABEL_NODE,
    ContainerExecutor,
    remove_job_containers,
    remove_node_containers,
    remove_orphans,
)
from cronium.executors.images import ImageDefaults
from cronium.executors.registry import build_executors
from tests.conftest import Api, wait_for_status
from tests.support.docker import *  # noqa: F403 (the Docker fixtures)
from tests.support.docker import TEST_IMAGES, containers_of
from tests.support.runs import create_event, log_lines, run

pytestmark = pytest.mark.slow
MiB = 1024 * 1024


async def wait_for_line(api: Api, execution_id: int, line: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(text == line for _, text in await log_lines(api, execution_id)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{line!r} never appeared: {await log_lines(api, execution_id)}")


def spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {
        "job_id": 900_000_000 + secrets.randbelow(99_999_999),
        "execution_id": 1,
        "event_id": 1,
        "event_name": "direct",
        "kind": "script",
        "target": "local",
        "timeout_s": 30.0,
        "language": "bash",
        "kill_grace_s": 2.0,
    }
    return JobSpec(**{**base, **fields})


async def run_direct(
    executor: ContainerExecutor, job: JobSpec
) -> tuple[JobResult, list[tuple[str, str]]]:
    lines: list[tuple[str, str]] = []

    async def sink(stream: LogStream, line: str) -> None:
        lines.append((stream.value, line))

    result = await executor.run(job, sink, asyncio.Event())
    return result, lines


# -- through the engine -------------------------------------------------------------------------

SCRIPTS = {
    "bash": (
        'echo "out $CRONIUM_EXECUTION_MODE"; echo "err line" >&2\n'
        'printf "partial"; sleep 0.3; printf " line\\n"; exit 3\n'
    ),
    "python": (
        "import os, sys, time\n"
        'print("out", os.environ["CRONIUM_EXECUTION_MODE"])\n'
        'print("err line", file=sys.stderr)\n'
        'sys.stdout.write("partial"); sys.stdout.flush(); time.sleep(0.3); print(" line")\n'
        "sys.exit(3)\n"
    ),
    "node": (
        'console.log("out " + process.env.CRONIUM_EXECUTION_MODE); console.error("err line");\n'
        'process.stdout.write("partial");\n'
        'setTimeout(() => { process.stdout.write(" line\\n"); process.exitCode = 3; }, 300);\n'
    ),
}


@pytest.mark.parametrize("language", ["bash", "python", "node"])
async def test_scripts_run_in_containers_with_their_output_and_exit_code(
    api: dict[str, Api], container_node: Node, language: str
) -> None:
    event_id = await create_event(api["user"], language=language, content=SCRIPTS[language])
    execution_id = await run(api["user"], event_id)
    done = await wait_for_status(api["user"], execution_id, timeout_s=60)
    assert done["status"] == "failed", done
    assert done["jobs"][0]["exit_code"] == 3
    lines = await log_lines(api["user"], execution_id)
    assert ("stdout", "out container") in lines
    assert ("stderr", "err line") in lines
    # Written in two pieces 300 ms apart: still one line.
    assert ("stdout", "partial line") in lines
    assert any("container executor" in text for stream, text in lines if stream == "system")


async def test_the_container_is_hardened_and_gone_after_cancel(
    api: dict[str, Api], container_node: Node, docker: aiodocker.Docker, test_node_id: str
) -> None:
    script = "\n".join(
        [
            'echo "uid=$(id -u) gid=$(id -g)"',
            "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status | tr -s '\\t' ' '",
            'touch /rootfile 2>/dev/null && echo "root writable" || echo "root read-only"',
            'touch /tmp/x && echo "tmp writable"',
            'touch /work/x && echo "work writable in $(pwd)"',
            'touch /opt/cronium/x 2>/dev/null && echo "script writable" || echo "script read-only"',
            "echo \"ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | paste -sd,)\"",
            "echo ready",
            "sleep 60",
        ]
    )
    event_id = await create_event(
        api["user"],
        content=script,
        resources={"cpu": 0.5, "memory_mb": 128, "pids": 64},
        env={"GREETING": "hello"},
    )
    execution_id = await run(api["user"], event_id)
    await wait_for_line(api["user"], execution_id, "ready")

    found = await containers_of(docker, test_node_id, {LABEL_EXECUTION: str(execution_id)})
    assert len(found) == 1, found
    info = await docker.containers.container(found[0]["Id"]).show()
    config, host = info["Config"], info["HostConfig"]
    job_id = done_job_id = int(config["Labels"][LABEL_JOB])
    assert config["User"] == "65534:65534"
    assert config["Labels"]["cronium.event"] == str(event_id)
    assert config["Cmd"] == ["bash", "/opt/cronium/script.sh"]  # the script is not in argv
    assert "GREETING=hello" in config["Env"]
    assert not any("ready" in value for value in config["Env"])
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 128 * MiB
    assert host["MemorySwap"] == 128 * MiB
    assert host["PidsLimit"] == 64
    assert set(host["Tmpfs"]) == {"/tmp", "/work"}
    assert config["WorkingDir"] == "/work"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/opt/cronium"]["Type"] == "volume"
    # The only host path a job sees is the Runtime API socket itself (not its directory),
    # read-only.
    binds = [m for m in info["Mounts"] if m["Type"] == "bind"]
    assert [(m["Destination"], m["RW"]) for m in binds] in (
        [],
        [("/run/cronium/runtime.sock", False)],
    )

    lines = [text for stream, text in await log_lines(api["user"], execution_id)]
    assert "uid=65534 gid=65534" in lines
    assert "CapEff: 0000000000000000" in lines
    assert "NoNewPrivs: 1" in lines
    assert "root read-only" in lines
    assert "tmp writable" in lines
    assert "work writable in /work" in lines
    assert "script read-only" in lines
    assert "ifaces=lo" in lines

    resp = await api["user"].post(f"/executions/{execution_id}/cancel")
    assert resp.status_code == 202, resp.text
    done = await wait_for_status(api["user"], execution_id, timeout_s=30)
    assert done["status"] == "cancelled"
    assert done["jobs"][0]["id"] == done_job_id == job_id
    assert await containers_of(docker, test_node_id) == []


async def test_a_sleep_past_its_timeout_ends_timed_out_and_leaves_no_container(
    api: dict[str, Api], container_node: Node, docker: aiodocker.Docker, test_node_id: str
) -> None:
    event_id = await create_event(api["user"], content="echo started; sleep 100", timeout_seconds=2)
    started = time.monotonic()
    execution_id = await run(api["user"], event_id)
    done = await wait_for_status(api["user"], execution_id, timeout_s=30)
    assert done["status"] == "timed_out", (done["error"], done["jobs"])
    # SIGTERM reaches the script through the container's init: no need to wait for SIGKILL.
    assert time.monotonic() - started < 2 + 5, "the stop waited for the SIGKILL grace period"
    assert ("stdout", "started") in await log_lines(api["user"], execution_id)
    assert await containers_of(docker, test_node_id) == []


async def test_a_missing_image_that_cannot_be_pulled_fails_clearly_and_fast(
    api: dict[str, Api], container_node: Node, docker: aiodocker.Docker, test_node_id: str
) -> None:
    # A registry on a closed loopback port: the pull is refused at once, no traffic leaves.
    image = "127.0.0.1:9/cronium-missing:latest"
    event_id = await create_event(api["user"], image=image, retries=2)
    started = time.monotonic()
    execution_id = await run(api["user"], event_id)
    done = await wait_for_status(api["user"], execution_id, timeout_s=30)
    assert time.monotonic() - started < 20
    assert done["status"] == "failed", done
    job = done["jobs"][0]
    assert job["attempt"] == 1, "a missing image is permanent: no retry"
    assert f"image {image} not found locally and pulling it failed" in job["error"]
    lines = await log_lines(api["user"], execution_id)
    assert any("pulling it failed" in text for stream, text in lines if stream == "system")
    assert await containers_of(docker, test_node_id) == []


async def test_a_script_reaches_the_runtime_api_socket_without_a_network(
    api: dict[str, Api], container_node: Node
) -> None:
    script = (
        'sock="${CRONIUM_RUNTIME_URL#unix://}"\n'
        'curl -sS --fail --unix-socket "$sock" -H "Authorization: Bearer $CRONIUM_EXECUTION_TOKEN" '
        "http://cronium/runtime/v1/context\n"
        'echo; curl -sS --fail --unix-socket "$sock" -X PUT -H "Content-Type: application/json" '
        '-H "Authorization: Bearer $CRONIUM_EXECUTION_TOKEN" '
        '-d \'{"data": {"from": "container"}}\' http://cronium/runtime/v1/output\n'
    )
    event_id = await create_event(api["user"], content=script)
    execution_id = await run(api["user"], event_id)
    done = await wait_for_status(api["user"], execution_id, timeout_s=60)
    lines = await log_lines(api["user"], execution_id)
    assert done["status"] == "succeeded", (done, lines)
    context = json.loads(next(text for stream, text in lines if text.startswith("{")))
    assert context["execution"]["id"] == execution_id
    assert context["job"]["mode"] == "container"


# -- the executor directly ------------------------------------------------------------------


async def test_the_events_image_wins_over_the_language_default(docker_engine: str) -> None:
    executor = ContainerExecutor(
        docker_host=docker_engine,
        images=ImageDefaults(bash="cronium/not-built:latest"),
        sdk={},
    )
    try:
        result, lines = await run_direct(
            executor, spec(content="echo override", image=TEST_IMAGES.bash)
        )
        assert result.exit_code == 0, (result, lines)
        assert ("stdout", "override") in lines
        # The default is not built, and cronium/* images are never pulled.
        with pytest.raises(ExecutorError) as failed:
            await run_direct(executor, spec(content="echo default"))
        assert "image cronium/not-built:latest not found locally and pulling it failed" in str(
            failed.value
        )
        assert "scripts/build-images" in str(failed.value)
        assert failed.value.permanent
    finally:
        await executor.aclose()


async def test_egress_gives_a_network_interface_only_when_the_event_asks(
    container_executor: ContainerExecutor,
) -> None:
    probe = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | paste -sd,"
    _, closed = await run_direct(container_executor, spec(content=probe))
    _, opened = await run_direct(container_executor, spec(content=probe, network=True))
    assert closed == [("stdout", "lo")]
    assert opened == [("stdout", "eth0,lo")]


async def test_many_lines_stream_in_order_on_their_own_streams(
    container_executor: ContainerExecutor,
) -> None:
    script = "import sys\nfor i in range(20000):\n    print(i)\nprint('bye', file=sys.stderr)\n"
    result, lines = await run_direct(container_executor, spec(language="python", content=script))
    assert result.exit_code == 0
    assert [text for stream, text in lines if stream == "stdout"] == [str(i) for i in range(20000)]
    assert [text for stream, text in lines if stream == "stderr"] == ["bye"]


async def test_the_memory_limit_holds_and_says_so(container_executor: ContainerExecutor) -> None:
    script = "x = []\nwhile True:\n    x.append(bytearray(16 * 1024 * 1024))\n"
    result, lines = await run_direct(
        container_executor, spec(language="python", content=script, memory_mb=64)
    )
    assert result.exit_code == 137, (result, lines)
    assert ("system", "the job was killed: out of memory (limit 64 MiB)") in lines


async def test_leftover_containers_are_removed_unless_their_job_still_runs(
    docker: aiodocker.Docker, test_node_id: str
) -> None:
    base = 800_000_000 + secrets.randbelow(99_999_999)
    dead_node, lost_node = f"{test_node_id}-dead", f"{test_node_id}-lost"
    plan = {  # job id: (node label, started?)
        base: (test_node_id, True),  # its job is over: removed
        base + 1: (test_node_id, False),  # created, never started, job over: removed
        base + 2: (test_node_id, True),  # its job still runs on a live node: kept
        base + 3: (dead_node, True),  # job runs again elsewhere; this older attempt: removed
        base + 4: (lost_node, True),  # recovery of a lost lease owner: removed by node
    }
    alive = base + 2
    installation = f"test-installation-{secrets.token_hex(4)}"
    ids: dict[int, str] = {}
    try:
        for job_id, (node, started) in plan.items():
            container = await docker.containers.create(
                {
                    "Image": TEST_IMAGES.bash,
                    "Cmd": ["sleep", "300"],
                    "Labels": {
                        LABEL_JOB: str(job_id),
                        LABEL_NODE: node,
                        LABEL_INSTALLATION: installation,
                    },
                    "HostConfig": {
                        "NetworkMode": "none",
                        "Mounts": [{"Type": "volume", "Target": "/v"}],
                    },
                }
            )
            if started:
                await container.start()
            ids[job_id] = container.id

        async def is_job_running(job_id: int) -> bool:
            # Other tests' containers may share this engine: only ours may be judged dead.
            return job_id not in ids or job_id in (alive, base + 3)

        assert await remove_node_containers(docker, lost_node) == 1
        removed = await remove_orphans(
            docker,
            is_job_running,
            live_nodes={test_node_id, "some-other-live-node"},
            # Other tests' containers share this engine: only this "installation" is judged.
            installation_id=installation,
        )
        assert removed >= 3
        listed = await docker.containers.list(all=True, filters=json.dumps({"label": [LABEL_JOB]}))
        left = {c._container["Labels"][LABEL_JOB] for c in listed}
        assert left & {str(job_id) for job_id in plan} == {str(alive)}
        assert await remove_job_containers(docker, alive) == 1
    finally:
        for container_id in ids.values():
            with contextlib.suppress(aiodocker.DockerError):
                await docker.containers.container(container_id).delete(force=True, v=True)


# -- choosing the executor ------------------------------------------------------------------


def make_settings(tmp_path: Path, **env: str) -> Settings:
    return Settings(CRONIUM_DATA_DIR=str(tmp_path), **env)


async def test_auto_picks_the_container_executor_when_docker_answers(
    docker_engine: str, tmp_path: Path
) -> None:
    executors = await build_executors(
        make_settings(tmp_path, CRONIUM_EXECUTOR="auto", DOCKER_HOST=docker_engine)
    )
    try:
        assert executors.mode == "container"
        assert executors.warning is None
    finally:
        await executors.aclose()


async def test_auto_falls_back_to_local_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"unix://{tmp_path}/no-docker.sock"
    with caplog.at_level(logging.WARNING, logger="cronium.executors"):
        executors = await build_executors(
            make_settings(tmp_path, CRONIUM_EXECUTOR="auto", DOCKER_HOST=dead)
        )
    assert executors.mode == "local"
    assert executors.warning is not None and "NOT isolated" in executors.warning
    assert any("NOT isolated" in r.getMessage() for r in caplog.records)
    await executors.aclose()


async def test_container_mode_without_docker_refuses_to_start(tmp_path: Path) -> None:
    dead = f"unix://{tmp_path}/no-docker.sock"
    with pytest.raises(ConfigError, match="CRONIUM_EXECUTOR=container but Docker is not usable"):
        await build_executors(
            make_settings(tmp_path, CRONIUM_EXECUTOR="container", DOCKER_HOST=dead)
        )


async def test_local_mode_is_local_even_with_docker(tmp_path: Path) -> None:
    executors = await build_executors(make_settings(tmp_path, CRONIUM_EXECUTOR="local"))
    assert executors.mode == "local"


async def test_an_optional_runtime_runs_the_job(
    docker: aiodocker.Docker, docker_engine: str
) -> None:
    """gVisor when the engine has it (`runsc` in daemon.json runtimes); skipped otherwise."""
    if "runsc" not in (await docker.system.info()).get("Runtimes", {}):
        pytest.skip("the Docker engine has no runsc runtime (optional: gVisor)")
    executor = ContainerExecutor(
        docker_host=docker_engine, images=TEST_IMAGES, runtime="runsc", sdk={}
    )
    try:
        result, lines = await run_direct(executor, spec(content="dmesg | head -n 1; id -u"))
    finally:
        await executor.aclose()
    assert result.exit_code == 0, (result, lines)
    assert ("stdout", "65534") in lines
    assert any("gVisor" in text for _, text in lines), lines
