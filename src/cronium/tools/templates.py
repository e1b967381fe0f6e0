"""Action parameters are templates, rendered in a sandbox.

The environment is Jinja2's immutable sandbox: no attribute starting with `_` (so no
`__class__`, `__globals__`, `__mro__` escapes), no calls to unsafe methods, no mutation of
the context, ranges capped. A refused access is a permanent `template_forbidden` error;
an unknown name or a syntax error is a permanent `template_error`: neither ever runs.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cronium.tools.base import ToolError

MAX_RENDERED_CHARS = 1_000_000

# keep_trailing_newline: Jinja drops a template's final newline by default, so "{{ a }}\n"
# lost it while a parameter without a template ("abc\n") kept it. Line endings in the text
# of a template still come out as "\n" (Jinja's lexer normalises "\r\n" and "\r").
_env = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


def _where(path: str) -> str:
    return f"params.{path}" if path else "params"


def render(value: Any, context: dict[str, Any], path: str = "") -> Any:
    """Render every string inside `value` (dicts and lists walked) with `context`."""
    if isinstance(value, str):
        if not _is_template(value):
            return value
        try:
            out = _env.from_string(value).render(context)
        except SecurityError as exc:
            raise ToolError(
                f"{_where(path)}: template refused by the sandbox: {exc}",
                permanent=True,
                reason="template_forbidden",
            ) from None
        except TemplateError as exc:
            raise ToolError(
                f"{_where(path)}: template {value[:60]!r} cannot be rendered: {exc}",
                permanent=True,
                reason="template_error",
            ) from None
        if len(out) > MAX_RENDERED_CHARS:
            raise ToolError(
                f"{_where(path)}: rendered to more than {MAX_RENDERED_CHARS} characters",
                permanent=True,
                reason="template_error",
            )
        return out
    if isinstance(value, dict):
        return {k: render(v, context, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def check_syntax(value: Any, path: str = "") -> None:
    """Refuse templates that cannot even be parsed (at save time, before any run)."""
    if isinstance(value, str) and _is_template(value):
        try:
            _env.parse(value)
        except TemplateSyntaxError as exc:
            raise ToolError(
                f"{_where(path)}: template syntax error: {exc.message}",
                permanent=True,
                reason="template_error",
            ) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_syntax(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_syntax(v, f"{path}[{i}]")
