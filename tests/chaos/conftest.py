"""The chaos tier's cluster: two `cronium serve` nodes on a private PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.cluster import NodeProcess, PrivatePostgres, cli, node_env
from tests.support.tool_receivers import free_port
from tests.support.valkey import RedisServer, redis_binary

GRACE_S = 2.0  # CRONIUM_MISFIRE_GRACE_SECONDS of the nodes


@dataclass
class Cluster:
    postgres: PrivatePostgres
    valkey: RedisServer
    nodes: list[NodeProcess]
    token: str


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    valkey = RedisServer(redis_binary(), free_port())
    postgres = PrivatePostgres()
    nodes: list[NodeProcess] = []
    try:
        url = await postgres.start()
        valkey.start()
        env = node_env(
            url,
            tmp_path / "data",
            valkey.url,
            CRONIUM_MISFIRE_GRACE_SECONDS=str(GRACE_S),
            CRONIUM_WORKER_CONCURRENCY="24",
            CRONIUM_LEASE_SECONDS="6",
        )
        await asyncio.to_thread(cli, env, "migrate")
        await asyncio.to_thread(
            cli, env, "create-user", "--email", "chaos@example.com", "--password", "x" * 12
        )
        token = await asyncio.to_thread(
            cli, env, "create-token", "--email", "chaos@example.com", "--name", "chaos"
        )
        for name in ("a", "b"):
            node_dir = tmp_path / name
            node_dir.mkdir()
            node = NodeProcess(
                name, {**env, "CRONIUM_DATA_DIR": str(node_dir)}, tmp_path / f"{name}.log"
            )
            nodes.append(node)
            node.start()
        await asyncio.gather(*(n.wait_ready() for n in nodes))
        yield Cluster(postgres, valkey, nodes, token.splitlines()[-1])
    finally:
        for node in nodes:
            await node.stop()
        if keep := os.environ.get("CRONIUM_CHAOS_KEEP_LOGS"):  # a folder to copy node logs to
            for node in nodes:
                shutil.copy(node.log_path, Path(keep) / node.log_path.name)
        valkey.stop()
        await asyncio.to_thread(postgres.remove)
