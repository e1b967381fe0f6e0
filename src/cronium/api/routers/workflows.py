"""Workflows: CRUD of the graph, runs, and runs with per-node detail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import or_, select, text

from cronium.api.deps import CoreDep, DbDep, PrincipalDep, WriterDep
from cronium.api.listing import Page, PageDep, Search, apply_sort, get_visible, paginate, visible
from cronium.api.schemas.events import MAX_ID
from cronium.api.schemas.runs import RunIn
from cronium.api.schemas.workflows import (
    NodeRunOut,
    WorkflowIn,
    WorkflowOut,
    WorkflowPatch,
    WorkflowRunOut,
    WorkflowRunStarted,
)
from cronium.db.models import EventStatus, ExecutionStatus, Trigger, Workflow, WorkflowRun
from cronium.domain.workflows import (
    check_no_open_run,
    save_workflow,
    stored_body,
    workflow_out,
)
from cronium.engine import queue
from cronium.engine import workflows as engine
from cronium.errors import Conflict

router = APIRouter(prefix="/workflows", tags=["workflows"])
runs_router = APIRouter(prefix="/workflow-runs", tags=["workflows"])

WorkflowId = Annotated[int, Path(ge=1, le=MAX_ID, description="The workflow's id.")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="The workflow run's id.")]

_SORTS = {
    "name": Workflow.name,
    "created_at": Workflow.created_at,
    "updated_at": Workflow.updated_at,
    "status": Workflow.status,
    "next_fire_at": Workflow.next_fire_at,
}


async def _notify_scheduler(db: DbDep) -> None:
    await db.execute(
        text("SELECT pg_notify(:channel, 'workflow')"), {"channel": queue.SCHEDULES_CHANNEL}
    )


@router.get("", response_model=Page[WorkflowOut])
async def list_workflows(
    principal: PrincipalDep,
    db: DbDep,
    page: PageDep,
    status: EventStatus | None = None,
    search: Search = None,
) -> Page[WorkflowOut]:
    """List workflows you can see."""
    stmt = visible(select(Workflow), Workflow.owner_id, principal)
    if status is not None:
        stmt = stmt.where(Workflow.status == status)
    if search:
        stmt = stmt.where(
            or_(
                Workflow.name.icontains(search, autoescape=True),
                Workflow.description.icontains(search, autoescape=True),
            )
        )
    stmt = apply_sort(stmt, page.sort, _SORTS, "name", Workflow.id)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[await workflow_out(db, w) for w in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=WorkflowOut, status_code=201)
async def create_workflow(
    body: WorkflowIn, principal: WriterDep, core: CoreDep, db: DbDep
) -> WorkflowOut:
    """Create a workflow: a DAG of your events."""
    workflow = Workflow(owner_id=principal.user_id, webhook_enabled=False)
    await save_workflow(
        db,
        workflow,
        body,
        core.cipher,
        graph_changed=True,
        webhook_secret_set="secret" in body.webhook.model_fields_set,
    )
    await _notify_scheduler(db)
    await db.refresh(workflow)
    return await workflow_out(db, workflow)


@router.get("/{workflow_id}", response_model=WorkflowOut)
async def get_workflow(workflow_id: WorkflowId, principal: PrincipalDep, db: DbDep) -> WorkflowOut:
    """One workflow with its nodes and edges."""
    return await workflow_out(
        db, await get_visible(db, Workflow, workflow_id, principal, what="workflow")
    )


@router.patch("/{workflow_id}", response_model=WorkflowOut)
async def update_workflow(
    workflow_id: WorkflowId, patch: WorkflowPatch, principal: WriterDep, core: CoreDep, db: DbDep
) -> WorkflowOut:
    """Change a workflow; `nodes` and `edges` replace the graph (nodes kept by key)."""
    workflow = await get_visible(
        db, Workflow, workflow_id, principal, for_write=True, what="workflow"
    )
    merged: dict[str, Any] = stored_body(await workflow_out(db, workflow))
    for key in patch.model_fields_set:
        value = getattr(patch, key)
        if key in ("nodes", "edges") and value is not None:
            merged[key] = [item.model_dump(by_alias=True) for item in value]
        elif hasattr(value, "model_dump"):
            merged[key] = value.model_dump()
        else:
            merged[key] = value
    if patch.webhook is not None:
        merged["webhook"] = {"enabled": workflow.webhook_enabled, **merged["webhook"]}
    try:
        body = WorkflowIn.model_validate(merged)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    webhook_fields = patch.webhook.model_fields_set if patch.webhook else set()
    await save_workflow(
        db,
        workflow,
        body,
        core.cipher,
        graph_changed=bool({"nodes", "edges"} & patch.model_fields_set),
        webhook_secret_set="secret" in webhook_fields,
    )
    await _notify_scheduler(db)
    await db.refresh(workflow)
    return await workflow_out(db, workflow)


@router.delete("/{workflow_id}", status_code=204)
async def delete_workflow(workflow_id: WorkflowId, principal: WriterDep, db: DbDep) -> Response:
    """Delete a workflow and its run history. Refused while a run is going."""
    workflow = await get_visible(
        db, Workflow, workflow_id, principal, for_write=True, what="workflow"
    )
    await check_no_open_run(db, workflow.id)
    await db.delete(workflow)
    await db.flush()
    return Response(status_code=204)


@router.post("/{workflow_id}/run", response_model=WorkflowRunStarted, status_code=202)
async def run_workflow(
    workflow_id: WorkflowId,
    principal: WriterDep,
    core: CoreDep,
    db: DbDep,
    body: RunIn | None = None,
) -> WorkflowRunStarted:
    """Run the workflow now: its roots start at once; answers with the run id."""
    workflow = await get_visible(db, Workflow, workflow_id, principal, what="workflow")
    if workflow.status is EventStatus.archived:
        raise Conflict(f"workflow {workflow_id} is archived: restore it before running it")
    run_input = body.input if body is not None and body.input is not None else workflow.input
    async with core.db.acquire() as conn, conn.transaction():
        run_id = await engine.start_run(
            conn,
            workflow.id,
            owner_id=workflow.owner_id,
            trigger=Trigger.manual,
            input=run_input,
            triggered_by=f"user:{principal.email}",
            triggered_by_user_id=principal.user_id,
        )
    assert run_id is not None
    return WorkflowRunStarted(run_id=run_id)


@router.get("/{workflow_id}/runs", response_model=Page[WorkflowRunOut])
async def list_runs(
    workflow_id: WorkflowId,
    principal: PrincipalDep,
    db: DbDep,
    page: PageDep,
    status: ExecutionStatus | None = None,
) -> Page[WorkflowRunOut]:
    """The workflow's runs, newest first (without per-node detail)."""
    workflow = await get_visible(db, Workflow, workflow_id, principal, what="workflow")
    stmt = select(WorkflowRun).where(WorkflowRun.workflow_id == workflow.id)
    if status is not None:
        stmt = stmt.where(WorkflowRun.status == status)
    stmt = apply_sort(
        stmt, page.sort or "-created_at", {"created_at": WorkflowRun.created_at}, "", WorkflowRun.id
    )
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[_run_out(r, []) for r in items], total=total, limit=page.limit, offset=page.offset
    )


@runs_router.get("/{run_id}", response_model=WorkflowRunOut)
async def get_run(run_id: RunId, principal: PrincipalDep, db: DbDep) -> WorkflowRunOut:
    """A run with each node's status, timings, input and output."""
    run = await get_visible(db, WorkflowRun, run_id, principal, what="workflow run")
    return _run_out(run, await _node_runs(db, run.id))


@runs_router.post("/{run_id}/cancel", response_model=WorkflowRunOut)
async def cancel_run(
    run_id: RunId, principal: WriterDep, core: CoreDep, db: DbDep
) -> WorkflowRunOut:
    """Cancel a run: running nodes are cancelled, the rest are skipped."""
    run = await get_visible(db, WorkflowRun, run_id, principal, lock=False, what="workflow run")
    if run.finished_at is not None:
        raise Conflict(f"workflow run {run_id} already finished ({run.status.value})")
    await engine.cancel_run(core.db, run.id)
    await db.refresh(run)
    return _run_out(run, await _node_runs(db, run.id))


async def _node_runs(db: DbDep, run_id: int) -> list[NodeRunOut]:
    rows = await db.execute(
        text(
            """SELECT r.node_id, n.name, n.event_id, r.status::text AS status, r.execution_id,
                      r.input, r.output, r.condition, r.error, r.started_at, r.finished_at
               FROM workflow_node_runs r JOIN workflow_nodes n ON n.id = r.node_id
               WHERE r.run_id = :run_id ORDER BY n.id"""
        ),
        {"run_id": run_id},
    )
    return [
        NodeRunOut(
            node_id=r.node_id,
            key=r.name,
            event_id=r.event_id,
            status=r.status,
            execution_id=r.execution_id,
            input=r.input,
            output=r.output,
            condition=r.condition,
            error=r.error,
            started_at=r.started_at,
            finished_at=r.finished_at,
            duration_ms=_ms(r.started_at, r.finished_at),
        )
        for r in rows.all()
    ]


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    return int((end - start).total_seconds() * 1000) if start and end else None


def _run_out(run: WorkflowRun, nodes: list[NodeRunOut]) -> WorkflowRunOut:
    return WorkflowRunOut(
        id=run.id,
        workflow_id=run.workflow_id,
        owner_id=run.owner_id,
        status=run.status,
        trigger=run.trigger,
        triggered_by=run.triggered_by,
        scheduled_for=run.scheduled_for,
        input=run.input,
        cancel_requested=run.cancel_requested,
        error=run.error,
        created_at=run.created_at,
        finished_at=run.finished_at,
        duration_ms=_ms(run.created_at, run.finished_at),
        nodes=nodes,
    )
