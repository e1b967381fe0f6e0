"""A node runs its roles' loops as named tasks in one TaskGroup.

Stop = set the stop event, let workers drain for a bounded grace, then cancel the rest.
A crashed loop ends the TaskGroup, so the node stops loudly instead of limping on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import asyncpg

from cronium import __version__
from cronium.core import Core
from cronium.engine import queue
from cronium.engine.actions import ACTIONS_CHANNEL
from cronium.engine.deliveries import delivery_loop
from cronium.engine.listener import Handler, Listener
from cronium.engine.maintenance import maintenance_loop
from cronium.engine.recovery import recover_once
from cronium.engine.scheduler import Scheduler
from cronium.engine.sql import q
from cronium.engine.worker import Worker
from cronium.executors.container import ContainerExecutor, remove_node_containers, remove_orphans
from cronium.executors.registry import ExecutorSet
from cronium.executors.ssh import SshExecutor
from cronium.executors.tool import ToolExecutor
from cronium.services.server_check import health_check_loop

log = logging.getLogger("cronium.node")

ROLES = frozenset({"api", "scheduler", "worker"})
RECOVERY_INTERVAL_S = 3.0
NODE_HEARTBEAT_S = 15.0
MAINTENANCE_INTERVAL_S = 300.0


class Node:
    def __init__(self, core: Core, roles: frozenset[str], executors: ExecutorSet) -> None:
        self.core = core
        self.roles = roles
        self.executors = executors
        if executors.ssh is None:
            executors.ssh = SshExecutor(
                core.ssh, command_timeout_s=core.settings.ssh_command_timeout_s
            )
        if executors.tool is None:
            executors.tool = ToolExecutor(core.db, core.cipher)
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self.worker = Worker(core, core.hub, executors) if "worker" in roles else None
        self.scheduler = Scheduler(core) if "scheduler" in roles else None
        handlers: dict[str, list[Handler]] = {
            queue.LOGS_CHANNEL: [core.hub.on_notify],
            queue.STATUS_CHANNEL: [core.hub.on_notify],
        }
        self.listener = Listener(core.engine.url.render_as_string(hide_password=False), handlers)
        self.deliveries_wake = asyncio.Event()
        if self.worker is not None:
            worker = self.worker
            handlers[ACTIONS_CHANNEL] = [lambda _payload: self.deliveries_wake.set()]
            handlers[queue.JOBS_CHANNEL] = [lambda _payload: worker.wake.set()]
            handlers[queue.CANCEL_CHANNEL] = [worker.on_cancel_notify]
            self.listener.on_reconnect.append(worker.wake.set)
        if self.scheduler is not None:
            scheduler = self.scheduler
            handlers[queue.SCHEDULES_CHANNEL] = [lambda _payload: scheduler.wake.set()]
            self.listener.on_reconnect.append(scheduler.wake.set)

    async def run(self) -> None:
        async with self.core.db.acquire() as conn:
            await conn.execute(
                q("node_seen"),
                self.core.node_id,
                socket.gethostname(),
                ",".join(sorted(self.roles)),
                __version__,
            )
        if self.worker is not None:
            await self._remove_leftover_containers()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.listener.run(self.stop_event), name="listener")
                group.create_task(self._node_heartbeat(), name="node-heartbeat")
                if self.worker is not None:
                    group.create_task(self.worker.claim_loop(self.stop_event), name="claim")
                    group.create_task(self.worker.heartbeat_loop(self.stop_event), name="heartbeat")
                    group.create_task(
                        delivery_loop(self.core, self.stop_event, self.deliveries_wake),
                        name="deliveries",
                    )
                if self.roles & {"worker", "scheduler"}:
                    group.create_task(self._recovery_loop(), name="recovery")
                    group.create_task(
                        maintenance_loop(self.core, self.stop_event, MAINTENANCE_INTERVAL_S),
                        name="maintenance",
                    )
                if self.scheduler is not None:
                    group.create_task(self.scheduler.run(self.stop_event), name="scheduler")
                    interval_s = self.core.settings.server_check_interval_s
                    if interval_s > 0:
                        group.create_task(
                            health_check_loop(self.core, self.stop_event, interval_s),
                            name="server-checks",
                        )
                await self.listener.connected.wait()
                self.ready.set()
                await self.stop_event.wait()
                if self.worker is not None:
                    await self.worker.drain(self.core.settings.kill_grace_s)
        finally:
            self.ready.clear()
            await self.executors.release()

    def stop(self) -> None:
        self.stop_event.set()

    async def _recovery_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                await recover_once(self.core, self.core.hub, self._remove_node_containers)
            except (OSError, ConnectionError, asyncpg.PostgresError) as exc:
                log.warning("recovery pass failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=RECOVERY_INTERVAL_S)

    async def _remove_leftover_containers(self) -> None:
        """Containers of jobs that no longer run (a node died, this one restarted) go."""
        script = self.executors.script
        if not isinstance(script, ContainerExecutor):
            return

        async def is_job_running(job_id: int) -> bool:
            async with self.core.db.acquire() as conn:
                return bool(
                    await conn.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND status = 'running'"
                        " AND lease_expires_at > now())",
                        job_id,
                    )
                )

        try:
            await remove_orphans(
                script.client(), is_job_running, installation_id=self.core.installation_id
            )
        except Exception as exc:  # Docker trouble must not stop the node from starting
            log.warning("could not look for leftover containers: %s", exc)

    async def _remove_node_containers(self, node_id: str) -> None:
        script = self.executors.script
        if isinstance(script, ContainerExecutor):
            try:
                await remove_node_containers(script.client(), node_id)
            except Exception as exc:
                log.warning("could not remove containers of lost node %s: %s", node_id, exc)

    async def _node_heartbeat(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=NODE_HEARTBEAT_S)
            with contextlib.suppress(OSError, ConnectionError, asyncpg.PostgresError):
                async with self.core.db.acquire() as conn:
                    await conn.execute(
                        "UPDATE nodes SET last_seen_at = now() WHERE id = $1", self.core.node_id
                    )
