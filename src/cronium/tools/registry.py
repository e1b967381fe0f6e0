"""The table of tools: adding one touches its folder and one line here."""

from __future__ import annotations

from typing import Any

from cronium.tools import discord, email, slack, teams, webhook
from cronium.tools.base import Tool, ToolError

TOOLS: dict[str, Tool] = {
    tool.kind: tool for tool in (slack.TOOL, discord.TOOL, teams.TOOL, email.TOOL, webhook.TOOL)
}


def get_tool(kind: str) -> Tool:
    tool = TOOLS.get(kind)
    if tool is None:
        raise ToolError(
            f"tool {kind!r} is not supported (available: {', '.join(sorted(TOOLS))})",
            permanent=True,
            reason="unsupported",
        )
    return tool


def split_action(tool: str, action: str) -> str:
    """`slack.send_message` or `send_message` → `send_message`, checked against the tool."""
    prefix, _, short = action.rpartition(".")
    if prefix and prefix != tool:
        raise ToolError(
            f"action {action!r} does not belong to a {tool} credential",
            permanent=True,
            reason="bad_action",
        )
    if short not in get_tool(tool).actions:
        known = ", ".join(sorted(get_tool(tool).actions))
        raise ToolError(
            f"{tool} has no action {short!r} (available: {known})",
            permanent=True,
            reason="bad_action",
        )
    return short


def describe(tool: Tool) -> dict[str, Any]:
    """A tool as GET /tools shows it: JSON Schemas of its credential and of each action."""
    return {
        "tool": tool.kind,
        "title": tool.title,
        "description": tool.description,
        "credential_schema": tool.config.model_json_schema(by_alias=True),
        "secret_fields": sorted(tool.secret_keys()),
        "actions": [
            {
                "name": name,
                "qualified_name": f"{tool.kind}.{name}",
                "params_schema": model.model_json_schema(by_alias=True),
            }
            for name, model in tool.actions.items()
        ],
    }


def catalogue() -> list[dict[str, Any]]:
    return [describe(tool) for tool in TOOLS.values()]
