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
        raise ToolError(f"tool {tool!r} is not supported (available: {', '.join(sorted(TOOLS))})", permanent=True)
    run: Callable[[ActionCall], Awaitable[ActionResult]] = module.run
    return run


def catalogue() -> dict[str, dict[str, Any]]:
    return {name: module.actions for name, module in TOOLS.items()}
