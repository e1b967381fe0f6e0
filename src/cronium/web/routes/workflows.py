"""Workflows pages: the list, the visual editor, a workflow with its runs, and a live run.

Pages read through the models and domain code; every change goes through the REST API
from the browser (static/js/workflow-editor.js, workflow-run.js), so the page shows
exactly the API's validation errors.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.deps import DbDep
from cronium.api.listing import get_visible, visible
from cronium.api.schemas.events import MAX_ID
from cronium.db.models import (
    Event,
    EventStatus,
    Workflow,
    WorkflowNode,
    WorkflowNodeRun,
    WorkflowRun,
)
from cronium.domain.workflows import workflow_out
from cronium.errors import NotFound
from cronium.web.deps import PageUser
from cronium.web.pages import count_rows, lenient_offset, require_writer, wants_fragment
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
RUNS_PAGE_SIZE = 20
MAX_EVENTS = 1000  # events offered in the editor's picker
READ_ONLY = "Viewers cannot change workflows."
# Hand-edited URLs: an id beyond bigint is a 404 page, odd paging or search text falls
# back to defaults, instead of a JSON validation error or a failed query.
Text = Annotated[str | None, Query()]


def _id(value: int, what: str) -> int:
    if not 1 <= value <= MAX_ID:
        raise NotFound(f"{what} {value} not found")
    return value


def _trigger_label(workflow: Workflow) -> str:
    """What starts the workflow, in a few words for the list."""
    kind = workflow.schedule_kind.value
    if kind == "cron":
        label = f"cron {workflow.cron}"
    elif kind == "interval":
        label = f"every {workflow.interval_seconds} s"
    elif kind == "once":
        label = "once"
    else:
        label = "manual"
    return label + (" · webhook" if workflow.webhook_enabled else "")


@router.get("/workflows", response_class=HTMLResponse)
async def workflows_page(
    request: Request, principal: PageUser, db: DbDep, offset: Text = None, q: Text = None
) -> HTMLResponse:
    """The list: one query for the page's workflows with node count and last run."""
    start = lenient_offset(offset)
    q = (q or "").replace("\x00", "").strip()[:200]
    base = visible(select(Workflow), Workflow.owner_id, principal)
    if q:
        base = base.where(Workflow.name.icontains(q, autoescape=True))
    total = await count_rows(db, base)
    node_count = (
        select(func.count(WorkflowNode.id))
        .where(WorkflowNode.workflow_id == Workflow.id)
        .correlate(Workflow)
        .scalar_subquery()
    )
    last_run = (
        select(WorkflowRun.id, WorkflowRun.status, WorkflowRun.created_at)
        .where(WorkflowRun.workflow_id == Workflow.id)
        .order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())
        .limit(1)
        .lateral("last_run")
    )
    stmt = (
        base.add_columns(
            node_count.label("node_count"),
            last_run.c.id.label("run_id"),
            last_run.c.status.label("run_status"),
            last_run.c.created_at.label("run_at"),
        )
        .outerjoin(last_run, true())
        .order_by(Workflow.name, Workflow.id)
        .limit(PAGE_SIZE)
        .offset(start)
    )
    rows = [
        {
            "wf": row[0],
            "trigger": _trigger_label(row[0]),
            "node_count": row.node_count,
            "run_id": row.run_id,
            "run_status": row.run_status,
            "run_at": row.run_at,
        }
        for row in (await db.execute(stmt)).all()
    ]
    context: dict[str, Any] = {
        "rows": rows,
        "total": total,
        "offset": start,
        "limit": PAGE_SIZE,
        "q": q,
    }
    if wants_fragment(request):
        response = render(request, "workflows/_list.html", principal, **context)
    else:
        response = render(request, "workflows/list.html", principal, title="Workflows", **context)
    # The same URL answers a fragment or a page: caches must keep them apart.
    response.headers["Vary"] = "HX-Request"
    return response


async def _events_for(db: AsyncSession, owner_id: int) -> list[dict[str, Any]]:
    """The owner's events a node may use (a workflow runs only its owner's events)."""
    rows = await db.execute(
        select(Event.id, Event.name, Event.type, Event.language, Event.status)
        .where(Event.owner_id == owner_id, Event.status != EventStatus.archived)
        .order_by(Event.name, Event.id)
        .limit(MAX_EVENTS)
    )
    return [
        {
            "id": r.id,
            "name": r.name,
            "kind": r.language.value if r.language else r.type.value,
            "status": r.status.value,
        }
        for r in rows.all()
    ]


@router.get("/workflows/new", response_class=HTMLResponse)
async def new_workflow_page(request: Request, principal: PageUser, db: DbDep) -> HTMLResponse:
    require_writer(principal, READ_ONLY)
    return render(
        request,
        "workflows/editor.html",
        principal,
        title="New workflow",
        workflow=None,
        graph={"nodes": [], "edges": []},
        events=await _events_for(db, principal.user_id),
    )


@router.get("/workflows/{workflow_id}/edit", response_class=HTMLResponse)
async def edit_workflow_page(
    request: Request, workflow_id: int, principal: PageUser, db: DbDep
) -> HTMLResponse:
    require_writer(principal, READ_ONLY)
    workflow = await get_visible(
        db, Workflow, _id(workflow_id, "workflow"), principal, what="workflow"
    )
    out = (await workflow_out(db, workflow)).model_dump(mode="json", by_alias=True)
    return render(
        request,
        "workflows/editor.html",
        principal,
        title=f"Edit {workflow.name}",
        workflow=out,
        graph={"nodes": out["nodes"], "edges": out["edges"]},
        events=await _events_for(db, workflow.owner_id),
    )


async def _event_names(db: AsyncSession, event_ids: set[int]) -> dict[int, str]:
    if not event_ids:
        return {}
    rows = await db.execute(select(Event.id, Event.name).where(Event.id.in_(event_ids)))
    return {r.id: r.name for r in rows.all()}


async def _runs_context(db: AsyncSession, workflow_id: int, offset: int) -> dict[str, Any]:
    total = int(
        await db.scalar(
            select(func.count(WorkflowRun.id)).where(WorkflowRun.workflow_id == workflow_id)
        )
        or 0
    )
    runs = (
        await db.scalars(
            select(WorkflowRun)
            .where(WorkflowRun.workflow_id == workflow_id)
            .order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())
            .limit(RUNS_PAGE_SIZE)
            .offset(offset)
        )
    ).all()
    return {
        "runs": runs,
        "runs_total": total,
        "runs_offset": offset,
        "runs_limit": RUNS_PAGE_SIZE,
        "workflow_id": workflow_id,
    }


@router.get("/workflows/{workflow_id}", response_class=HTMLResponse)
async def workflow_page(
    request: Request, workflow_id: int, principal: PageUser, db: DbDep
) -> HTMLResponse:
    workflow = await get_visible(
        db, Workflow, _id(workflow_id, "workflow"), principal, what="workflow"
    )
    out = (await workflow_out(db, workflow)).model_dump(mode="json", by_alias=True)
    names = await _event_names(db, {n["event_id"] for n in out["nodes"]})
    graph = {
        "nodes": [{**n, "event_name": names.get(n["event_id"], "")} for n in out["nodes"]],
        "edges": out["edges"],
    }
    return render(
        request,
        "workflows/detail.html",
        principal,
        title=workflow.name,
        workflow=out,
        trigger=_trigger_label(workflow),
        next_fire_at=workflow.next_fire_at,
        graph=graph,
        **await _runs_context(db, workflow.id, 0),
    )


@router.get("/workflows/{workflow_id}/runs", response_class=HTMLResponse)
async def workflow_runs_fragment(
    request: Request, workflow_id: int, principal: PageUser, db: DbDep, offset: Text = None
) -> HTMLResponse:
    """The run history table alone, for HTMX paging."""
    workflow = await get_visible(
        db, Workflow, _id(workflow_id, "workflow"), principal, what="workflow"
    )
    return render(
        request,
        "workflows/_runs.html",
        principal,
        **await _runs_context(db, workflow.id, lenient_offset(offset)),
    )


@router.get("/workflow-runs/{run_id}", response_class=HTMLResponse)
async def workflow_run_page(
    request: Request, run_id: int, principal: PageUser, db: DbDep
) -> HTMLResponse:
    """The run's graph, coloured by node status; workflow-run.js polls the API for changes."""
    run = await get_visible(
        db, WorkflowRun, _id(run_id, "workflow run"), principal, what="workflow run"
    )
    workflow = await db.get(Workflow, run.workflow_id)
    assert workflow is not None  # runs are deleted with their workflow
    out = (await workflow_out(db, workflow)).model_dump(mode="json", by_alias=True)
    node_runs = {
        nr.node_id: nr
        for nr in (
            await db.scalars(select(WorkflowNodeRun).where(WorkflowNodeRun.run_id == run.id))
        ).all()
    }
    names = await _event_names(db, {n["event_id"] for n in out["nodes"]})
    nodes = []
    for n in out["nodes"]:
        nr = node_runs.get(n["id"])
        nodes.append(
            {
                **n,
                "event_name": names.get(n["event_id"], ""),
                # A node added after this run has no row in it.
                "status": nr.status.value if nr else "absent",
                "execution_id": nr.execution_id if nr else None,
                "error": nr.error if nr else None,
                "started_at": nr.started_at if nr else None,
                "finished_at": nr.finished_at if nr else None,
            }
        )
    graph = {
        "nodes": [
            {k: v for k, v in n.items() if k not in ("started_at", "finished_at")} for n in nodes
        ],
        "edges": out["edges"],
    }
    return render(
        request,
        "workflows/run.html",
        principal,
        title=f"Run {run.id} of {workflow.name}",
        run=run,
        workflow=out,
        nodes=nodes,
        graph=graph,
    )
