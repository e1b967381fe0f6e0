"""Action parameters are templates, rendered in a sandbox (no attribute escapes)."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cronium.tools.base import ToolError

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside `value` (dicts and lists walked) with `context`."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _env.from_string(value).render(context)
        except TemplateError as exc:
            raise ToolError(
                f"template {value[:60]!r} cannot be rendered: {exc}", permanent=True
            ) from None
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value
