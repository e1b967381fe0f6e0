"""Tool actions of an event checked when it is saved, not only when a run sends them.

The action must exist for the credential's tool, its templates must parse, and its params
must fit the action's schema. Templates render to strings at run time, so a value that is a
template is only known to be a string: errors located at a template are left for the run.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.schemas.events import EventIn
from cronium.db.models import ActionType, ToolCredential
from cronium.errors import ValidationFailed
from cronium.tools.base import ToolError
from cronium.tools.registry import get_tool, split_action
from cronium.tools.templates import check_syntax


def _value_at(params: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        in_dict = isinstance(params, dict) and part in params
        in_list = isinstance(params, list) and isinstance(part, int) and part < len(params)
        if not (in_dict or in_list):
            return None
        params = params[part]
    return params


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and any(mark in value for mark in ("{{", "{%", "{#"))


def check_params(tool: str, action: str, params: dict[str, Any], field: str) -> None:
    """Raise a 422 naming `field` (e.g. `actions.0.params.body`) for params no run can send."""
    try:
        short = split_action(tool, action)
        check_syntax(params)
    except ToolError as exc:
        where = exc.message.split(":", 1)[0]
        suffix = where.removeprefix("params") if where.startswith("params") else ""
        target = f"{field}{suffix}" if suffix else field
        if "action" in exc.reason:
            target = field.rsplit(".", 1)[0] + ".action"
        raise ValidationFailed(exc.message, details={"field": target}) from None
    if "template_id" in params:
        return  # merged with the saved template's params at run time
    try:
        get_tool(tool).actions[short].model_validate(params)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            if err.get("type") != "missing" and _is_template(_value_at(params, loc)):
                continue
            path = ".".join(str(p) for p in loc)
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                msg = "unknown field"
            target = f"{field}.{path}" if path else field
            raise ValidationFailed(f"{target}: {msg}", details={"field": target}) from None


async def check_event_tool_params(db: AsyncSession, owner_id: int, body: EventIn) -> None:
    """Check the tool event's action and every tool conditional action of `body`."""
    wanted: list[tuple[int, str, dict[str, Any], str]] = [
        (a.credential_id, a.action, a.params, f"actions.{i}.params")
        for i, a in enumerate(body.actions)
        if a.type is ActionType.tool and a.credential_id and a.action
    ]
    if body.tool is not None:
        wanted.append((body.tool.credential_id, body.tool.action, body.tool.params, "tool.params"))
    if not wanted:
        return
    ids = {cred_id for cred_id, *_ in wanted}
    rows = await db.execute(
        select(ToolCredential.id, ToolCredential.tool).where(
            ToolCredential.id.in_(ids), ToolCredential.owner_id == owner_id
        )
    )
    tools: dict[int, Any] = {row.id: row.tool for row in rows}
    for cred_id, action, params, field in wanted:
        tool = tools.get(cred_id)
        if tool is not None:  # a missing credential is reported by the reference check
            check_params(str(getattr(tool, "value", tool)), action, params, field)
