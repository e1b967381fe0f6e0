"""Saved tool actions per user: name, tool, action and templated params.

An event's tool spec, a conditional tool action or a script's tool call uses one by
putting `"template_id": <id>` in its params: the template's params apply, overridden by
any other params given alongside.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import or_, select

from cronium.api.deps import CoreDep, DbDep, PrincipalDep, WriterDep
from cronium.api.listing import (
    Page,
    PageDep,
    apply_sort,
    flush_unique,
    get_visible,
    paginate,
    visible,
)
from cronium.api.routers.credentials import TEST_POLICY
from cronium.api.schemas.resources import NO_NUL, ObjectId
from cronium.api.schemas.tools import (
    ActionOutcomeOut,
    ActionTemplateIn,
    ActionTemplateOut,
    ActionTemplatePatch,
    ActionTemplatePreviewIn,
    ActionTemplatePreviewOut,
    ActionTemplateTestIn,
)
from cronium.db.models import ToolKind
from cronium.db.models.resources import ActionTemplate
from cronium.errors import Conflict, ValidationFailed
from cronium.tools.base import ToolError
from cronium.tools.context import standalone_context
from cronium.tools.credentials import validated
from cronium.tools.execute import ActionRequest, execute
from cronium.tools.registry import get_tool, split_action
from cronium.tools.templates import check_syntax, render

router = APIRouter(prefix="/action-templates", tags=["action-templates"])

_SORTS = {
    "name": ActionTemplate.name,
    "tool": ActionTemplate.tool,
    "created_at": ActionTemplate.created_at,
    "updated_at": ActionTemplate.updated_at,
}
_UNIQUE = "uq_action_templates_owner_name"


def _checked(tool: str, action: str, params: dict[str, object]) -> str:
    """The action's short name; a 422 for an unknown action or a template syntax error."""
    try:
        short = split_action(tool, action)
    except ToolError as exc:
        raise ValidationFailed(exc.message, details={"field": "action"}) from None
    try:
        check_syntax(params)
    except ToolError as exc:
        # The message starts with the parameter's path (`params.text: …`): name that field.
        where = exc.message.split(":", 1)[0]
        field = where if where.startswith("params.") else "params"
        raise ValidationFailed(exc.message, details={"field": field}) from None
    if "template_id" in params:
        raise ValidationFailed(
            "a template cannot refer to another template", details={"field": "params"}
        )
    return short


async def _check_unique(db: DbDep, owner_id: int, name: str, template_id: int | None) -> None:
    stmt = select(ActionTemplate.id).where(
        ActionTemplate.owner_id == owner_id, ActionTemplate.name == name
    )
    if template_id is not None:
        stmt = stmt.where(ActionTemplate.id != template_id)
    if await db.scalar(stmt) is not None:
        raise Conflict(
            f"you already have an action template named {name!r}", details={"field": "name"}
        )


@router.get("", response_model=Page[ActionTemplateOut])
async def list_action_templates(
    principal: PrincipalDep,
    db: DbDep,
    page: PageDep,
    tool: ToolKind | None = None,
    search: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> Page[ActionTemplateOut]:
    """List saved action templates you can see."""
    stmt = visible(select(ActionTemplate), ActionTemplate.owner_id, principal)
    if tool is not None:
        stmt = stmt.where(ActionTemplate.tool == tool)
    if search:
        stmt = stmt.where(
            or_(
                ActionTemplate.name.icontains(search, autoescape=True),
                ActionTemplate.description.icontains(search, autoescape=True),
            )
        )
    stmt = apply_sort(stmt, page.sort, _SORTS, "name", ActionTemplate.id)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[ActionTemplateOut.model_validate(t) for t in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=ActionTemplateOut, status_code=201)
async def create_action_template(
    body: ActionTemplateIn, principal: WriterDep, db: DbDep
) -> ActionTemplateOut:
    """Save a tool action as a template."""
    action = _checked(body.tool.value, body.action, body.params)
    await _check_unique(db, principal.user_id, body.name, None)
    template = ActionTemplate(
        owner_id=principal.user_id,
        name=body.name,
        tool=body.tool,
        action=action,
        params=body.params,
        description=body.description,
    )
    db.add(template)
    await flush_unique(db, _UNIQUE, "action template", "name", body.name)
    await db.refresh(template)
    return ActionTemplateOut.model_validate(template)


@router.get("/{template_id}", response_model=ActionTemplateOut)
async def get_action_template(
    template_id: ObjectId, principal: PrincipalDep, db: DbDep
) -> ActionTemplateOut:
    """One action template."""
    template = await get_visible(db, ActionTemplate, template_id, principal, what="action template")
    return ActionTemplateOut.model_validate(template)


@router.patch("/{template_id}", response_model=ActionTemplateOut)
async def update_action_template(
    template_id: ObjectId, patch: ActionTemplatePatch, principal: WriterDep, db: DbDep
) -> ActionTemplateOut:
    """Change an action template (its tool stays; create another for another tool)."""
    template = await get_visible(
        db, ActionTemplate, template_id, principal, for_write=True, what="action template"
    )
    if patch.name is not None:
        await _check_unique(db, template.owner_id, patch.name, template.id)
        template.name = patch.name
    if patch.description is not None:
        template.description = patch.description
    action = patch.action if patch.action is not None else template.action
    params = patch.params if patch.params is not None else template.params
    template.action = _checked(template.tool.value, action, params)
    template.params = params
    await flush_unique(db, _UNIQUE, "action template", "name", template.name)
    await db.refresh(template)
    return ActionTemplateOut.model_validate(template)


@router.delete("/{template_id}", status_code=204)
async def delete_action_template(
    template_id: ObjectId, principal: WriterDep, db: DbDep
) -> Response:
    """Delete an action template (actions that named it fail with template_not_found)."""
    template = await get_visible(
        db, ActionTemplate, template_id, principal, for_write=True, what="action template"
    )
    await db.delete(template)
    await db.flush()
    return Response(status_code=204)


@router.post("/preview", response_model=ActionTemplatePreviewOut)
async def preview_action_template(
    body: ActionTemplatePreviewIn, principal: WriterDep, core: CoreDep
) -> ActionTemplatePreviewOut:
    """Render (unsaved) params with sample run data and check them; nothing is sent."""
    action = _checked(body.tool.value, body.action, body.params)
    try:
        async with core.db.acquire() as conn:
            context = await standalone_context(conn, principal.user_id)
        rendered = render(body.params, {**context, **body.sample.model_dump()})
        validated(get_tool(body.tool.value).actions[action], rendered, "params", "bad_params")
    except ToolError as exc:
        return ActionTemplatePreviewOut.model_validate(
            {"ok": False, "params": None, "error": exc.as_dict()}
        )
    return ActionTemplatePreviewOut(ok=True, params=rendered, error=None)


@router.post("/{template_id}/test", response_model=ActionOutcomeOut)
async def test_action_template(
    template_id: ObjectId,
    principal: WriterDep,
    core: CoreDep,
    db: DbDep,
    body: ActionTemplateTestIn | None = None,
) -> ActionOutcomeOut:
    """Send the saved template once with sample run data; 200 with ok=false on failure."""
    template = await get_visible(
        db,
        ActionTemplate,
        template_id,
        principal,
        for_write=True,
        lock=False,
        what="action template",
    )
    body = body or ActionTemplateTestIn()
    # The owner's credential and template, through the one path every tool action takes.
    request = ActionRequest(
        owner_id=template.owner_id,
        action=f"{template.tool.value}.{template.action}",
        params={**body.params, "template_id": template.id},
        credential_id=body.credential_id,
        tool=template.tool.value,
        sample=body.sample.model_dump(),
    )
    outcome = await execute(core.db, core.cipher, request, TEST_POLICY)
    return ActionOutcomeOut.model_validate(outcome.as_dict())
