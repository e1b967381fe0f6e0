"""Workflow runs, driven from the database.

A run starts with one `workflow_node_runs` row per node, all `pending`. `advance` looks
at the run under its row lock and starts every node that is ready, skips every node that
can no longer run, and settles the run when no node is left. It runs in the transaction
that started the run, or in the one that settled a node's execution (the settle is a
conditional UPDATE exactly one caller wins). So a node starts exactly once: a crash
before commit undoes the settle and the start together, and lease recovery settles the
execution again later.

Join rule: a node is ready when every parent has finished (ran to an end, or was
skipped). It then runs if at least one incoming edge is satisfied, and is skipped if
none is. A skipped node satisfies no edge, so skips flow down the branch not taken.
A root (no parents) runs with the run's input.

Edges: `always` (the parent ran, whatever its result), `on_success`, `on_failure`
(failed, timed out or partial), `on_condition` (the parent set its condition to the
edge's `condition`).

Input: a node with one satisfied parent gets that parent's output; with several, an
object {parent node name: output}; a root gets the run's input. A node's own `input`
(an object) is laid over that (its keys win).

The run ends `cancelled` when it was cancelled, `failed` when a node failed and no
`on_failure`/`always` edge led anywhere from it (unhandled), else `succeeded`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from cronium.db.models import ExecutionStatus, NodeRunStatus, Trigger
from cronium.engine import queue

log = logging.getLogger("cronium.workflows")

WORKFLOW_CHANNEL = "cronium_workflows"
FINAL = frozenset(
    {
        NodeRunStatus.succeeded,
        NodeRunStatus.failed,
        NodeRunStatus.timed_out,
        NodeRunStatus.cancelled,
        NodeRunStatus.partial,
        NodeRunStatus.skipped,
    }
)
FAILED = frozenset({NodeRunStatus.failed, NodeRunStatus.timed_out, NodeRunStatus.partial})
RAN = FINAL - {NodeRunStatus.skipped}


@dataclass(frozen=True)
class Edge:
    source: int
    target: int
    type: str
    condition: bool | None


@dataclass
class NodeState:
    node_id: int
    name: str
    event_id: int
    input: Any
    status: NodeRunStatus
    output: Any = None
    condition: bool | None = None
    incoming: list[Edge] = field(default_factory=list)
    outgoing: list[Edge] = field(default_factory=list)


def satisfied(edge: Edge, parent: NodeState) -> bool:
    """Whether a finished parent lets this edge through."""
    if parent.status not in RAN:
        return False
    if edge.type == "always":
        return True
    if edge.type == "on_success":
        return parent.status is NodeRunStatus.succeeded
    if edge.type == "on_failure":
        return parent.status in FAILED
    return (
        parent.status is not NodeRunStatus.cancelled
        and parent.condition is not None
        and parent.condition == edge.condition
    )


def node_input(node: NodeState, parents: list[NodeState], run_input: Any) -> Any:
    if not node.incoming:
        base = run_input
    elif len(parents) == 1:
        base = parents[0].output
    else:
        base = {p.name: p.output for p in parents}
    if base is None:
        base = {}
    if isinstance(node.input, dict) and node.input:
        return {**base, **node.input} if isinstance(base, dict) else dict(node.input)
    return base


def run_outcome(nodes: dict[int, NodeState], cancelled: bool) -> tuple[ExecutionStatus, str | None]:
    if cancelled:
        return ExecutionStatus.cancelled, "cancelled by request"
    unhandled = [
        n.name
        for n in nodes.values()
        if n.status in FAILED and not any(e.type in ("on_failure", "always") for e in n.outgoing)
    ]
    if unhandled:
        return ExecutionStatus.failed, "failed: " + ", ".join(sorted(unhandled))
    return ExecutionStatus.succeeded, None


async def start_run(
    conn: asyncpg.Connection,
    workflow_id: int,
    *,
    owner_id: int,
    trigger: Trigger,
    input: Any,
    triggered_by: str | None = None,
    triggered_by_user_id: int | None = None,
    scheduled_for: Any = None,
) -> int | None:
    """Create a run and start its roots, in the caller's transaction.

    None when a scheduled fire for (workflow, fire time) already exists.
    """
    run_id = await conn.fetchval(
        """
        INSERT INTO workflow_runs (workflow_id, owner_id, status, trigger, triggered_by,
                                   triggered_by_user_id, scheduled_for, input)
        VALUES ($1, $2, 'running', $3, $4, $5, $6, $7::jsonb)
        ON CONFLICT (workflow_id, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING
        RETURNING id
        """,
        workflow_id,
        owner_id,
        trigger.value,
        triggered_by,
        triggered_by_user_id,
        scheduled_for,
        input if input is not None else {},
    )
    if run_id is None:
        return None
    await conn.execute(
        "INSERT INTO workflow_node_runs (run_id, node_id)"
        " SELECT $1, id FROM workflow_nodes WHERE workflow_id = $2",
        run_id,
        workflow_id,
    )
    await advance(conn, int(run_id))
    return int(run_id)


async def on_node_settled(
    conn: asyncpg.Connection, execution_id: int, run_id: int, status: ExecutionStatus
) -> None:
    """A node's execution settled: record it on its node run and move the run on."""
    run_status = await conn.fetchval(
        "SELECT status FROM workflow_runs WHERE id = $1 FOR UPDATE", run_id
    )
    if run_status is None:
        return
    await conn.execute(
        """
        UPDATE workflow_node_runs n
        SET status = $2::text::node_run_status, output = x.output, condition = x.condition,
            error = x.error, finished_at = coalesce(x.finished_at, now())
        FROM executions x
        WHERE n.execution_id = $1 AND x.id = $1 AND n.status = 'running'
        """,
        execution_id,
        status.value,
    )
    await advance(conn, run_id)


async def cancel_run(pool: asyncpg.Pool, run_id: int) -> bool:
    """Cancel a run: no node starts any more, running nodes are cancelled.

    Locks are taken in the engine's order (jobs, then execution, then run), in short
    transactions: first the flag, then each running node as a cancelled execution, then a
    last advance that skips the rest and settles the run. False if it had already ended.
    """
    from cronium.engine import actions

    async with pool.acquire() as conn:
        async with conn.transaction():
            flagged = await conn.fetchval(
                "UPDATE workflow_runs SET cancel_requested = true"
                " WHERE id = $1 AND finished_at IS NULL RETURNING id",
                run_id,
            )
        if flagged is None:
            return False
        running = await conn.fetch(
            "SELECT execution_id FROM workflow_node_runs"
            " WHERE run_id = $1 AND status = 'running' AND execution_id IS NOT NULL",
            run_id,
        )
        for record in running:
            async with conn.transaction():
                await queue.request_cancel(conn, record["execution_id"])
                finished = await queue.settle_execution(conn, record["execution_id"])
                if finished is not None:
                    await actions.on_settled(conn, finished)
        async with conn.transaction():
            await advance(conn, run_id)
    return True


async def advance(conn: asyncpg.Connection, run_id: int) -> None:
    """Start what is ready, skip what cannot run, settle the run when nothing is left."""
    run = await conn.fetchrow(
        """SELECT id, workflow_id, owner_id, input, cancel_requested, finished_at
           FROM workflow_runs WHERE id = $1 FOR UPDATE""",
        run_id,
    )
    if run is None or run["finished_at"] is not None:
        return
    nodes = await _load(conn, run_id)
    cancelled = bool(run["cancel_requested"])
    changed = True
    while changed:
        changed = False
        for node in nodes.values():
            if node.status is not NodeRunStatus.pending:
                continue
            parents = [nodes[e.source] for e in node.incoming]
            if cancelled:
                await _set_status(conn, run_id, node, NodeRunStatus.skipped)
                changed = True
                continue
            if any(p.status not in FINAL for p in parents):
                continue
            through = [nodes[e.source] for e in node.incoming if satisfied(e, nodes[e.source])]
            if node.incoming and not through:
                await _set_status(conn, run_id, node, NodeRunStatus.skipped)
                changed = True
                continue
            unique_parents = list({p.node_id: p for p in through}.values())
            await _start_node(conn, run, node, node_input(node, unique_parents, run["input"]))
    if all(n.status in FINAL for n in nodes.values()):
        status, error = run_outcome(nodes, cancelled)
        await conn.execute(
            "UPDATE workflow_runs SET status = $2::text::execution_status, error = $3,"
            " finished_at = now() WHERE id = $1",
            run_id,
            status.value,
            error,
        )
        log.info("workflow run %s %s", run_id, status.value, extra={"action": "workflow_done"})
    await conn.execute("SELECT pg_notify($1, $2)", WORKFLOW_CHANNEL, str(run_id))


async def _load(conn: asyncpg.Connection, run_id: int) -> dict[int, NodeState]:
    rows = await conn.fetch(
        """SELECT n.id, n.name, n.event_id, n.input, r.status::text AS status, r.output,
                  r.condition
           FROM workflow_node_runs r JOIN workflow_nodes n ON n.id = r.node_id
           WHERE r.run_id = $1 ORDER BY n.id""",
        run_id,
    )
    nodes = {
        r["id"]: NodeState(
            r["id"],
            r["name"],
            r["event_id"],
            r["input"],
            NodeRunStatus(r["status"]),
            r["output"],
            r["condition"],
        )
        for r in rows
    }
    edges = await conn.fetch(
        """SELECT e.source_id, e.target_id, e.type::text AS type, e.condition
           FROM workflow_edges e JOIN workflow_runs w ON w.workflow_id = e.workflow_id
           WHERE w.id = $1 ORDER BY e.id""",
        run_id,
    )
    for e in edges:
        edge = Edge(e["source_id"], e["target_id"], e["type"], e["condition"])
        if edge.source in nodes and edge.target in nodes:
            nodes[edge.target].incoming.append(edge)
            nodes[edge.source].outgoing.append(edge)
    return nodes


async def _set_status(
    conn: asyncpg.Connection, run_id: int, node: NodeState, status: NodeRunStatus
) -> None:
    await conn.execute(
        "UPDATE workflow_node_runs SET status = $3::text::node_run_status, finished_at = now()"
        " WHERE run_id = $1 AND node_id = $2 AND status = 'pending'",
        run_id,
        node.node_id,
        status.value,
    )
    node.status = status


async def _start_node(
    conn: asyncpg.Connection, run: asyncpg.Record, node: NodeState, node_in: Any
) -> None:
    from cronium.engine.runner import concurrency_limit
    from cronium.engine.scheduler import event_targets

    event = await conn.fetchrow(
        """SELECT id, status::text AS status, run_local, retries, retry_backoff_seconds,
                  overlap_policy::text AS overlap, max_concurrent
           FROM events WHERE id = $1""",
        node.event_id,
    )
    if event is None or event["status"] == "archived":
        await conn.execute(
            "UPDATE workflow_node_runs SET status = 'failed', error = $3, finished_at = now()"
            " WHERE run_id = $1 AND node_id = $2",
            run["id"],
            node.node_id,
            f"event {node.event_id} no longer exists or is archived",
        )
        node.status = NodeRunStatus.failed
        return
    execution_id = await queue.enqueue(
        conn,
        queue.NewExecution(
            event_id=node.event_id,
            owner_id=run["owner_id"],
            trigger=Trigger.workflow,
            targets=await event_targets(conn, node.event_id, event["run_local"]),
            input=node_in,
            triggered_by=f"workflow-run:{run['id']}:{node.name}",
            max_attempts=event["retries"] + 1,
            retry_backoff_s=event["retry_backoff_seconds"],
            concurrency_limit=concurrency_limit(event["overlap"], event["max_concurrent"]),
            workflow_run_id=run["id"],
        ),
    )
    await conn.execute(
        """UPDATE workflow_node_runs
           SET status = 'running', execution_id = $3, input = $4::jsonb, started_at = now()
           WHERE run_id = $1 AND node_id = $2 AND status = 'pending'""",
        run["id"],
        node.node_id,
        execution_id,
        node_in,
    )
    node.status = NodeRunStatus.running
