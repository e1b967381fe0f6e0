"""Workflow rules: a valid DAG of the owner's events, saved by node name.

Saving keeps nodes by name (an edited node keeps its id and its run history), adds the
new ones, drops the removed ones and replaces the edges. The graph may not change while
a run of the workflow is still going: its engine reads the graph at every step.
"""

from __future__ import annotations

import secrets
from collections import deque
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.schemas.events import WebhookOut
from cronium.api.schemas.workflows import (
    EdgeIn,
    EdgeOut,
    NodeIn,
    NodeOut,
    WorkflowIn,
    WorkflowOut,
)
from cronium.db.models import (
    Event,
    EventStatus,
    ScheduleKind,
    Workflow,
    WorkflowEdge,
    WorkflowNode,
    WorkflowRun,
)
from cronium.domain.events import compute_next_fire, schedule_dict
from cronium.errors import Conflict, ValidationFailed
from cronium.security.crypto import Cipher


def check_graph(nodes: list[NodeIn], edges: list[EdgeIn]) -> None:
    """Unique node names, edges between known nodes, no cycle; else a 422 naming the fault."""
    names = [n.key for n in nodes]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ValidationFailed(
                f"nodes[{i}].key: {name!r} is used by two nodes", details={"field": "nodes"}
            )
        seen.add(name)
    pairs: set[tuple[str, str, str]] = set()
    for i, edge in enumerate(edges):
        for end, field in (("source", "from"), ("target", "to")):
            if getattr(edge, end) not in seen:
                raise ValidationFailed(
                    f"edges[{i}].{field}: no node has the key {getattr(edge, end)!r} "
                    "(dangling edge)",
                    details={"field": f"edges[{i}].{field}"},
                )
        if edge.source == edge.target:
            raise ValidationFailed(
                f"edges[{i}]: node {edge.source!r} cannot follow itself (cycle)",
                details={"field": f"edges[{i}]"},
            )
        key = (edge.source, edge.target, edge.type.value)
        if key in pairs:
            raise ValidationFailed(
                f"edges[{i}]: a {edge.type.value} edge {edge.source!r} → {edge.target!r} "
                "is there twice",
                details={"field": f"edges[{i}]"},
            )
        pairs.add(key)
    cycle = find_cycle(names, [(e.source, e.target) for e in edges])
    if cycle:
        raise ValidationFailed(
            "edges: the graph has a cycle: " + " → ".join([*cycle, cycle[0]]),
            details={"field": "edges", "cycle": cycle},
        )


def find_cycle(names: list[str], edges: list[tuple[str, str]]) -> list[str] | None:
    """A cycle's nodes in order, or None (Kahn's algorithm, then a walk to name one)."""
    children: dict[str, list[str]] = {n: [] for n in names}
    indegree = dict.fromkeys(names, 0)
    for source, target in edges:
        children[source].append(target)
        indegree[target] += 1
    ready = deque(n for n in names if indegree[n] == 0)
    while ready:
        node = ready.popleft()
        for child in children[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    left = [n for n in names if indegree[n] > 0]
    if not left:
        return None
    # Every node left has a parent left: walk parents until one repeats.
    parents = {t: s for s, t in edges if s in indegree and indegree[s] > 0 and t in left}
    path: list[str] = []
    node = left[0]
    while node not in path:
        path.append(node)
        node = parents[node]
    cycle = path[path.index(node) :]
    cycle.reverse()
    return cycle


async def check_events(db: AsyncSession, owner_id: int, nodes: list[NodeIn]) -> None:
    wanted = {n.event_id for n in nodes}
    if not wanted:
        return
    found = {
        row.id: row.status
        for row in (
            await db.execute(
                select(Event.id, Event.status).where(
                    Event.id.in_(wanted), Event.owner_id == owner_id
                )
            )
        ).all()
    }
    for i, node in enumerate(nodes):
        if node.event_id not in found:
            raise ValidationFailed(
                f"nodes[{i}].event_id: event {node.event_id} not found",
                details={"field": f"nodes[{i}].event_id"},
            )
        if found[node.event_id] is EventStatus.archived:
            raise ValidationFailed(
                f"nodes[{i}].event_id: event {node.event_id} is archived",
                details={"field": f"nodes[{i}].event_id"},
            )


async def check_no_open_run(db: AsyncSession, workflow_id: int) -> None:
    open_run = await db.scalar(
        select(WorkflowRun.id).where(
            WorkflowRun.workflow_id == workflow_id, WorkflowRun.finished_at.is_(None)
        )
    )
    if open_run is not None:
        raise Conflict(
            f"run {open_run} of this workflow is still going: wait for it or cancel it "
            "before changing the graph",
            details={"run_id": open_run},
        )


async def save_workflow(
    db: AsyncSession,
    workflow: Workflow,
    body: WorkflowIn,
    cipher: Cipher,
    *,
    graph_changed: bool,
    webhook_secret_set: bool,
) -> Workflow:
    """Write a validated body into `workflow` (new or existing), with its graph."""
    check_graph(body.nodes, body.edges)
    is_new = workflow.id is None
    if graph_changed:
        await check_events(db, workflow.owner_id, body.nodes)
        if not is_new:
            await check_no_open_run(db, workflow.id)
    workflow.name = body.name
    workflow.description = body.description
    workflow.status = body.status
    workflow.tags = body.tags
    workflow.input = body.input
    workflow.start_at = body.start_at
    workflow.misfire_policy = body.misfire_policy
    sched = body.schedule
    workflow.schedule_kind = ScheduleKind(sched.kind)
    workflow.cron = getattr(sched, "cron", None)
    workflow.timezone = getattr(sched, "timezone", None) or "UTC"
    workflow.interval_seconds = getattr(sched, "every_seconds", None)
    workflow.run_at = getattr(sched, "at", None)
    hook = body.webhook
    workflow.webhook_enabled = hook.enabled
    if hook.enabled and (workflow.webhook_key is None or hook.regenerate_key):
        workflow.webhook_key = secrets.token_urlsafe(24)
    if webhook_secret_set:
        workflow.webhook_secret_encrypted = cipher.encrypt_str(hook.secret) if hook.secret else None
    workflow.next_fire_at = compute_next_fire(workflow, datetime.now(UTC))
    if is_new:
        db.add(workflow)
    try:
        await db.flush()
    except IntegrityError as exc:
        if "uq_workflows_owner_name" in str(exc.orig):
            raise Conflict(
                f"you already have a workflow named {body.name!r}", details={"field": "name"}
            ) from None
        raise
    if graph_changed:
        await _replace_graph(db, workflow.id, body.nodes, body.edges)
    return workflow


async def _replace_graph(
    db: AsyncSession, workflow_id: int, nodes: list[NodeIn], edges: list[EdgeIn]
) -> None:
    existing = {
        n.name: n
        for n in (
            await db.scalars(select(WorkflowNode).where(WorkflowNode.workflow_id == workflow_id))
        ).all()
    }
    await db.execute(delete(WorkflowEdge).where(WorkflowEdge.workflow_id == workflow_id))
    keep = {n.key for n in nodes}
    for name, row in existing.items():
        if name not in keep:
            await db.delete(row)
    for node in nodes:
        row = existing.get(node.key) or WorkflowNode(workflow_id=workflow_id, name=node.key)
        row.event_id = node.event_id
        row.input = node.input
        row.position = node.position.model_dump()
        if row.id is None:
            db.add(row)
    await db.flush()
    rows = await db.execute(
        select(WorkflowNode.name, WorkflowNode.id).where(WorkflowNode.workflow_id == workflow_id)
    )
    ids = dict(rows.all())
    for edge in edges:
        db.add(
            WorkflowEdge(
                workflow_id=workflow_id,
                source_id=ids[edge.source],
                target_id=ids[edge.target],
                type=edge.type,
                condition=edge.condition,
            )
        )
    await db.flush()


async def workflow_out(db: AsyncSession, workflow: Workflow) -> WorkflowOut:
    nodes = (
        await db.scalars(
            select(WorkflowNode)
            .where(WorkflowNode.workflow_id == workflow.id)
            .order_by(WorkflowNode.id)
        )
    ).all()
    names = {n.id: n.name for n in nodes}
    edges = (
        await db.scalars(
            select(WorkflowEdge)
            .where(WorkflowEdge.workflow_id == workflow.id)
            .order_by(WorkflowEdge.id)
        )
    ).all()
    return WorkflowOut(
        id=workflow.id,
        owner_id=workflow.owner_id,
        name=workflow.name,
        description=workflow.description,
        status=workflow.status,
        tags=list(workflow.tags),
        input=workflow.input,
        schedule=schedule_dict(workflow),
        start_at=workflow.start_at,
        next_fire_at=workflow.next_fire_at,
        misfire_policy=workflow.misfire_policy,
        nodes=[
            NodeOut(id=n.id, key=n.name, event_id=n.event_id, input=n.input, position=n.position)
            for n in nodes
        ],
        edges=[
            EdgeOut(
                id=e.id,
                source=names[e.source_id],
                target=names[e.target_id],
                type=e.type,
                condition=e.condition,
            )
            for e in edges
        ],
        webhook=WebhookOut(
            enabled=workflow.webhook_enabled,
            key=workflow.webhook_key if workflow.webhook_enabled else None,
            has_secret=workflow.webhook_secret_encrypted is not None,
        ),
        created_at=workflow.created_at,
        updated_at=workflow.updated_at,
    )


def stored_body(out: WorkflowOut) -> dict[str, Any]:
    """The workflow as a WorkflowIn-shaped dict, to lay a PATCH over."""
    data = out.model_dump(
        exclude={"id", "owner_id", "next_fire_at", "created_at", "updated_at", "webhook"}
    )
    data["nodes"] = [{k: v for k, v in n.items() if k != "id"} for n in data["nodes"]]
    data["edges"] = [
        {"from": e.source, "to": e.target, "type": e.type.value, "condition": e.condition}
        for e in out.edges
    ]
    data["webhook"] = {"enabled": out.webhook.enabled}
    return data
