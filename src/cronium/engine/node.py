"""A node runs its roles' loops as named tasks in one TaskGroup.

Stop = set the stop event, let workers drain for a bounded grace, then cancel the rest.
A crashed loop ends the TaskGroup, so the node stops loudly instead of limping on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Coroutine
from typing import Any

from cronium import __version__
from cronium.core import Core
from cronium.db.session import DB_UNAVAILABLE
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
# After the drain, loops get this long to notice the stop; one still inside a database call
# that will not return (a connection lost mid-query) is cancelled, so a stop never hangs.
STOP_GRACE_S = 5.0


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
                loops: list[asyncio.Task[None]] = []

                def spawn(loop: Coroutine[Any, Any, None], name: str) -> None:
                    loops.append(group.create_task(loop, name=name))

                spawn(self.listener.run(self.stop_event), name="listener")
                spawn(self._node_heartbeat(), name="node-heartbeat")
                if self.worker is not None:
                    spawn(self.worker.claim_loop(self.stop_event), name="claim")
                    spawn(self.worker.heartbeat_loop(self.stop_event), name="heartbeat")
                    spawn(
                        delivery_loop(self.core, self.stop_event, self.deliveries_wake),
                        name="deliveries",
                    )
                if self.roles & {"worker", "scheduler"}:
                    spawn(self._recovery_loop(), name="recovery")
                    spawn(
                        maintenance_loop(self.core, self.stop_event, MAINTENANCE_INTERVAL_S),
                        name="maintenance",
                    )
                if self.scheduler is not None:
                    spawn(self.scheduler.run(self.stop_event), name="scheduler")
                    interval_s = self.core.settings.server_check_interval_s
                    if interval_s > 0:
                        spawn(
                            health_check_loop(self.core, self.stop_event, interval_s),
                            name="server-checks",
                        )
                await self.listener.connected.wait()
                self.ready.set()
                await self.stop_event.wait()
                if self.worker is not None:
                    await self.worker.drain(self.core.settings.kill_grace_s)
                await _cancel_stragglers(loops, STOP_GRACE_S)
        finally:
            self.ready.clear()
            await self.executors.release()

    def stop(self) -> None:
        self.stop_event.set()

    async def _recovery_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                await recover_once(self.core, self.core.hub, self._remove_node_containers)
            except DB_UNAVAILABLE as exc:
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
            with contextlib.suppress(*DB_UNAVAILABLE):
                async with self.core.db.acquire() as conn:
                    await conn.execute(
                        "UPDATE nodes SET last_seen_at = now() WHERE id = $1", self.core.node_id
                    )


async def _cancel_stragglers(loops: list[asyncio.Task[None]], grace_s: float) -> None:
    """Wait up to `grace_s` for the loops to end on their own, then cancel the rest."""
    if not loops:
        return
    _, pending = await asyncio.wait(loops, timeout=grace_s)
    for task in pending:
        log.warning("stopping: %s did not end within %g s; cancelled", task.get_name(), grace_s)
        task.cancel()
