"""Monitoring: queue, running jobs, nodes, recent failures and the optional services.

The page re-asks itself every 5 s over HTMX and gets only the panels back. Counts of the
queue and nodes are cluster-wide; lists of runs show only what the reader may see.
Valkey and Docker are probed as /ready probes them, with a tighter time limit so the page
stays fast when a dependency hangs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.deps import CoreDep, DbDep, Principal
from cronium.core import Core
from cronium.db.models import Event, Execution, ExecutionStatus, Job, JobStatus, Node
from cronium.engine.node import NODE_HEARTBEAT_S
from cronium.services.probes import Probe, probe_docker, probe_valkey
from cronium.web.deps import PageUser
from cronium.web.pages import is_htmx
from cronium.web.render import render
from cronium.web.routes.executions import RUN_COLUMNS, run_rows

router = APIRouter(include_in_schema=False)

PROBE_LIMIT_S = 0.25
LIST_LIMIT = 20
# A node that missed three heartbeats is shown as lost (recovery takes its jobs back).
NODE_LOST_AFTER = timedelta(seconds=3 * NODE_HEARTBEAT_S)
# Rows of nodes gone for longer are history, not monitoring (they are never deleted).
NODE_FORGOTTEN_AFTER = timedelta(days=1)
FAILED = (ExecutionStatus.failed, ExecutionStatus.timed_out, ExecutionStatus.partial)

QUEUE_SQL = text(
    """SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
              count(*) FILTER (WHERE status = 'queued' AND run_after <= now()) AS ready,
              count(*) FILTER (WHERE status = 'waiting') AS waiting,
              count(*) FILTER (WHERE status = 'running') AS running,
              extract(epoch FROM now() - min(run_after)
                  FILTER (WHERE status = 'queued' AND run_after <= now())) AS oldest_s
       FROM jobs WHERE status IN ('queued', 'waiting', 'running')"""
)


@dataclass(frozen=True)
class RunningJob:
    job_id: int
    execution_id: int
    event_id: int
    event_name: str
    target: str
    mode: str | None
    node: str | None
    attempt: int
    started_at: datetime | None


@dataclass(frozen=True)
class NodeRow:
    id: str
    hostname: str
    roles: str
    version: str
    started_at: datetime
    last_seen_at: datetime
    running: int
    online: bool
    this_node: bool


@dataclass(frozen=True)
class Dependency:
    name: str
    state: str  # ok | absent | error
    detail: str | None
    extra: str | None = None


async def _bounded(probe: Any, what: str) -> Probe:
    try:
        async with asyncio.timeout(PROBE_LIMIT_S):
            result: Probe = await probe
            return result
    except TimeoutError:
        return Probe("error", f"{what} gave no answer within {PROBE_LIMIT_S * 1000:.0f} ms")


async def _dependencies(core: Core, last_mode: str | None) -> list[Dependency]:
    settings = core.settings
    docker, valkey = await asyncio.gather(
        _bounded(probe_docker(settings.docker_host), "Docker"),
        _bounded(probe_valkey(settings.valkey_url), "Valkey"),
    )
    link = core.valkey
    valkey_use = None
    if settings.valkey_url:
        valkey_use = f"this node uses {'Valkey' if link.usable else 'in-process fallbacks'}"
    mode = core.executor_mode
    if mode == "local":
        executor_detail = (
            core.executor_warning or "scripts run as local subprocesses (no isolation)"
        )
    elif mode:
        executor_detail = f"scripts run in {mode} mode"
    else:
        executor_detail = "no worker role on this node"
    return [
        Dependency("Valkey", valkey.state, valkey.reason, valkey_use),
        Dependency("Docker", docker.state, docker.reason),
        Dependency(
            "Executor",
            "ok" if mode else "absent",
            executor_detail,
            f"mode: {mode or 'none'} · last job ran in mode: {last_mode or 'none yet'}",
        ),
    ]


async def _running_jobs(db: AsyncSession, principal: Principal) -> list[RunningJob]:
    stmt = (
        select(
            Job.id,
            Job.execution_id,
            Job.event_id,
            Event.name,
            Job.target,
            Job.mode,
            Job.lease_owner,
            Job.attempt,
            Job.started_at,
        )
        .join(Event, Event.id == Job.event_id)
        .where(Job.status == JobStatus.running)
        .order_by(Job.started_at, Job.id)
        .limit(LIST_LIMIT)
    )
    if not principal.sees_all:
        stmt = stmt.where(Event.owner_id == principal.user_id)
    return [RunningJob(*r) for r in (await db.execute(stmt)).all()]


async def _nodes(db: AsyncSession, core: Core, now: datetime) -> list[NodeRow]:
    per_node = (
        select(Job.lease_owner.label("node"), func.count().label("running"))
        .where(Job.status == JobStatus.running)
        .group_by(Job.lease_owner)
        .subquery()
    )
    rows = (
        await db.execute(
            select(Node, func.coalesce(per_node.c.running, 0))
            .outerjoin(per_node, per_node.c.node == Node.id)
            .where(Node.last_seen_at >= now - NODE_FORGOTTEN_AFTER)
            .order_by(Node.last_seen_at.desc())
            .limit(50)
        )
    ).all()
    return [
        NodeRow(
            n.id,
            n.hostname,
            n.roles,
            n.version,
            n.started_at,
            n.last_seen_at,
            int(running),
            now - n.last_seen_at <= NODE_LOST_AFTER,
            n.id == core.node_id,
        )
        for n, running in rows
    ]


async def _recent_failures(db: AsyncSession, principal: Principal) -> list[Any]:
    stmt = (
        select(*RUN_COLUMNS)
        .join(Event, Event.id == Execution.event_id)
        .where(Execution.status.in_(FAILED))
        .order_by(Execution.created_at.desc(), Execution.id.desc())
        .limit(10)
    )
    if not principal.sees_all:
        stmt = stmt.where(Execution.owner_id == principal.user_id)
    return run_rows((await db.execute(stmt)).all())


@router.get("/monitoring", response_class=HTMLResponse)
async def monitoring_page(
    request: Request, principal: PageUser, db: DbDep, core: CoreDep
) -> HTMLResponse:
    now = datetime.now(UTC)
    # The probes wait on the network, the queries on the database: run them side by side.
    # The mode of the newest job that started: what actually ran, on whichever node.
    last_mode = await db.scalar(
        select(Job.mode).where(Job.mode.is_not(None)).order_by(Job.id.desc()).limit(1)
    )
    probes = asyncio.create_task(_dependencies(core, last_mode))
    try:
        context: dict[str, Any] = {
            "queue": (await db.execute(QUEUE_SQL)).one(),
            "running_jobs": await _running_jobs(db, principal),
            "nodes": await _nodes(db, core, now),
            "failures": await _recent_failures(db, principal),
        }
    except BaseException:
        probes.cancel()
        raise
    context["dependencies"] = await probes
    template = "monitoring/_panels.html" if is_htmx(request) else "monitoring/index.html"
    return render(request, template, principal, title="Monitoring", **context)
