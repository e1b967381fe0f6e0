"""The table of tools: adding one touches its folder and one line here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from cronium.tools import email, webhook
from cronium.tools.base import ActionCall, ActionResult, ToolError

TOOLS: dict[str, ModuleType] = {
    "email": email,
    "webhook": webhook,
}


def runner(tool: str) -> Callable[[ActionCall], Awaitable[ActionResult]]:
    module = TOOLS.get(tool)
    if module is None:
        raise ToolError(
            f"tool {tool!r} is not supported (available: {', '.join(sorted(TOOLS))})",
            permanent=True,
        )
    run: Callable[[ActionCall], Awaitable[ActionResult]] = module.run
    return run


def catalogue() -> dict[str, dict[str, Any]]:
    return {name: module.actions for name, module in TOOLS.items()}


async def run_tool_action(
    tool: str, action: str, params: dict[str, Any], config: dict[str, Any]
) -> Any:
    """Run one action now (scripts' execute_tool_action); permanent errors become 422."""
    from cronium.errors import ValidationFailed

    short = action.rpartition(".")[2]
    try:
        result = await runner(tool)(ActionCall(action=short, params=params, config=config))
    except ToolError as exc:
        if exc.permanent:
            raise ValidationFailed(exc.message) from None
        raise
    return result.detail
