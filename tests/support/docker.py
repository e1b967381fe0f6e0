"""Fixtures for tests that need a real Docker engine and the locally built cronium/* images.

Without an engine (or without the images) these tests skip with the reason; with
CRONIUM_TEST_REQUIRE_ALL=1 (set by .ci/run) they fail instead. `scripts/ensure-docker`
starts an engine and `scripts/build-images` builds the images.

Import the fixtures into a test module: `from tests.support.docker import *  # noqa: F403`
or by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiodocker
import pytest
import uvicorn

from cronium.core import Core
from cronium.engine.node import Node
from cronium.executors.container import LABEL_NODE, ContainerExecutor
from cronium.executors.images import ImageDefaults
from cronium.executors.registry import ExecutorSet
from cronium.services.probes import probe_docker

__all__ = [
    "container_executor",
    "container_node",
    "docker",
    "docker_engine",
    "test_node_id",
]

REQUIRE_ALL = os.environ.get("CRONIUM_TEST_REQUIRE_ALL") == "1"
DOCKER_HOST = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
TEST_IMAGES = ImageDefaults(
    python="cronium/python:latest", node="cronium/node:latest", bash="cronium/bash:latest"
)


def _unavailable(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"Docker is required (CRONIUM_TEST_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
async def docker_engine() -> str:
    """The engine's address once it answers and has the test images; else skip (or fail)."""
    probe = await probe_docker(os.environ.get("DOCKER_HOST"))
    if probe.state != "ok":
        _unavailable(f"no Docker engine: {probe.reason} (run scripts/ensure-docker)")
    async with aiodocker.Docker(url=DOCKER_HOST) as docker:
        for image in TEST_IMAGES.as_dict().values():
            try:
                await docker.images.inspect(image)
            except aiodocker.DockerError:
                _unavailable(f"image {image} is missing (run scripts/build-images)")
    return DOCKER_HOST


@pytest.fixture
async def docker(docker_engine: str) -> AsyncIterator[aiodocker.Docker]:
    async with aiodocker.Docker(url=docker_engine) as client:
        yield client


@pytest.fixture
def test_node_id() -> str:
    """A node id no other test (or test worker) uses: filter containers by it."""
    return f"test-{secrets.token_hex(6)}"


@pytest.fixture
async def container_executor(
    docker_engine: str, core: Core, test_node_id: str
) -> AsyncIterator[ContainerExecutor]:
    executor = ContainerExecutor(
        docker_host=docker_engine,
        images=TEST_IMAGES,
        node_id=test_node_id,
        runtime_socket=str(core.settings.runtime_socket_path),
        pull_timeout_s=30,
    )
    yield executor
    await remove_node_containers(executor.client(), test_node_id)
    await executor.aclose()


@pytest.fixture
async def container_node(
    core: Core, runtime_server: uvicorn.Server, container_executor: ContainerExecutor
) -> AsyncIterator[Node]:
    """Like conftest's `node`, but scripts run with the container executor."""
    executors = ExecutorSet(container_executor)
    core.executor_mode = executors.mode
    running = Node(core, frozenset({"api", "scheduler", "worker"}), executors)
    task = asyncio.create_task(running.run())
    await asyncio.wait_for(running.ready.wait(), timeout=10)
    yield running
    running.stop()
    await asyncio.wait_for(task, timeout=30)


async def containers_of(
    docker: aiodocker.Docker, node_id: str, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Containers (running or not) of a test node, narrowed by more `label=value` pairs."""
    wanted = [f"{LABEL_NODE}={node_id}", *(f"{k}={v}" for k, v in (labels or {}).items())]
    found = await docker.containers.list(all=True, filters=json.dumps({"label": wanted}))
    return [c._container for c in found]


async def remove_node_containers(docker: aiodocker.Docker, node_id: str) -> None:
    for container in await docker.containers.list(
        all=True, filters=json.dumps({"label": [f"{LABEL_NODE}={node_id}"]})
    ):
        with contextlib.suppress(aiodocker.DockerError):
            await container.delete(force=True, v=True)
