"""What of the Runtime API socket's host directory a container job sees: the socket alone.

The socket may be configured in a directory that holds other things (`/var/run/x.sock`
would share `/var/run` with the Docker socket). The job gets that one file bound, so
nothing else of the directory shows; a named volume (Cronium itself in a container) is
mounted whole, so one that holds more than the socket is refused at start.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from cronium.config import ExecutorChoice, Settings
from cronium.engine.node import Node
from cronium.errors import ConfigError
from cronium.executors.base import JobSpec
from cronium.executors.container import ContainerExecutor
from cronium.executors.registry import build_executors
from cronium.runtime.socket import bind_runtime_socket
from tests.conftest import Api, wait_for_status
from tests.support.docker import *  # noqa: F403 (the Docker fixtures)
from tests.support.runs import create_event, log_lines, run

MARKER = "not-for-jobs-7d1e"

# Lists the socket's directory in the container, tries what sits next to the socket on the
# host, and uses the Runtime API through the SDK (CRONIUM_RUNTIME_URL).
PROBE = r"""
import errno, json, os, socket
folder = os.path.dirname(os.environ["CRONIUM_RUNTIME_URL"].removeprefix("unix://"))
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
def connect(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
found = {
    "url": os.environ["CRONIUM_RUNTIME_URL"],
    "listing": sorted(os.listdir(folder)),
    "file": attempt(lambda: open(f"{folder}/neighbour.txt").read()),
    "nested": attempt(lambda: os.listdir(f"{folder}/nested")),
    "other_socket": attempt(lambda: connect(f"{folder}/other.sock")),
    "job": cronium.event()["job"]["mode"],
}
cronium.set_variable("seen_from_the_job", found["listing"])
cronium.output(found)
print("FOUND " + json.dumps(found))
"""


def crowd(folder: Path) -> None:
    """What a shared directory may hold next to the socket: a file, a directory."""
    (folder / "neighbour.txt").write_text(MARKER)
    (folder / "nested").mkdir()
    (folder / "nested" / "inner.txt").write_text(MARKER)


@pytest.mark.slow
async def test_a_job_sees_the_socket_and_nothing_else_of_its_directory(
    api: dict[str, Api], container_node: Node, settings: Settings, runtime_socket: Path
) -> None:
    folder = runtime_socket.parent
    crowd(folder)
    # Another program's live socket next to ours (as docker.sock in /var/run).
    other = await asyncio.start_unix_server(lambda r, w: w.close(), str(folder / "other.sock"))
    try:
        event_id = await create_event(api["user"], language="python", content=PROBE)
        execution_id = await run(api["user"], event_id)
        done = await wait_for_status(api["user"], execution_id, timeout_s=90)
    finally:
        other.close()
    lines = await log_lines(api["user"], execution_id)
    assert done["status"] == "succeeded", (done, lines)
    found = json.loads(next(t for _, t in lines if t.startswith("FOUND "))[len("FOUND ") :])
    assert found["url"] == f"unix:///run/cronium/{runtime_socket.name}"
    assert found["listing"] == [runtime_socket.name]
    assert found["file"] == found["nested"] == found["other_socket"] == "ENOENT"
    assert found["job"] == "container"  # the SDK reached the Runtime API through it
    assert done["output"] == found
    variables = (await api["user"].get("/variables", params={"limit": 200})).json()["items"]
    assert [v["value"] for v in variables if v["key"] == "seen_from_the_job"] == [
        [runtime_socket.name]
    ]
    assert MARKER not in "\n".join(t for _, t in lines)


def probe_spec() -> JobSpec:
    return JobSpec(
        job_id=1,
        execution_id=1,
        event_id=1,
        event_name="mount",
        kind="script",
        target="local",
        timeout_s=10,
        language="bash",
        content="true",
    )


def test_the_executor_of_the_settings_binds_the_socket_file_only(
    settings: Settings, runtime_socket: Path
) -> None:
    crowd(runtime_socket.parent)
    executor = ContainerExecutor.from_settings(settings)

    def binds() -> list[dict[str, object]]:
        mounts = executor.container_config(probe_spec(), "img")["HostConfig"]["Mounts"]
        return [m for m in mounts if m["Type"] == "bind"]

    assert binds() == []  # not bound yet: nothing, and never the directory
    sock = bind_runtime_socket(runtime_socket)
    try:
        bound = binds()
    finally:
        sock.close()
    assert bound == [
        {
            "Type": "bind",
            "Source": str(runtime_socket),
            "Target": f"/run/cronium/{runtime_socket.name}",
            "ReadOnly": True,
        }
    ]


async def test_a_runtime_volume_holding_more_than_the_socket_is_refused_at_start(
    settings: Settings, runtime_socket: Path, docker_engine: str
) -> None:
    with_volume = settings.model_copy(
        update={
            "runtime_volume": "cronium-run-test",
            "executor": ExecutorChoice.container,
            "docker_host": docker_engine,
        }
    )
    sock = bind_runtime_socket(runtime_socket)
    try:
        # The socket alone: the volume is mounted.
        executor = ContainerExecutor.from_settings(with_volume)
        mounts = executor.container_config(probe_spec(), "img")["HostConfig"]["Mounts"]
        assert {"Type": "volume", "Source": "cronium-run-test"} in [
            {"Type": m["Type"], "Source": m.get("Source")} for m in mounts
        ]
        # Anything next to it: the node does not start.
        (runtime_socket.parent / "docker.sock").write_text("")
        (runtime_socket.parent / "notes").write_text(MARKER)
        with pytest.raises(ConfigError) as refused:
            await build_executors(with_volume)
    finally:
        sock.close()
    message = str(refused.value)
    assert "CRONIUM_RUNTIME_VOLUME=cronium-run-test" in message
    assert str(runtime_socket.parent) in message
    assert "docker.sock, notes" in message


def test_binding_the_socket_neither_replaces_another_file_nor_opens_a_shared_directory(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    taken = shared / "runtime.sock"
    taken.write_text(MARKER)
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        bind_runtime_socket(taken)
    assert taken.read_text() == MARKER
    taken.unlink()
    sock = bind_runtime_socket(taken)
    sock.close()
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
    # A directory it creates itself is open to job users.
    created = tmp_path / "made" / "run" / "runtime.sock"
    bind_runtime_socket(created).close()
    assert stat.S_IMODE(os.stat(created.parent).st_mode) == 0o755
