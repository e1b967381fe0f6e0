"""Action parameters are templates, rendered in a sandbox.

The environment is Jinja2's immutable sandbox: no attribute starting with `_` (so no
`__class__`, `__globals__`, `__mro__` escapes), no calls to unsafe methods, no mutation of
the context, ranges capped. A refused access is a permanent `template_forbidden` error;
an unknown name or a syntax error is a permanent `template_error`: neither ever runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cronium.tools.base import ToolError

MAX_RENDERED_CHARS = 1_000_000
# Loop iterations plus calls (functions, methods, macros) one render may take: output
# limits do not bound time, and `{% for a in range(100000) %}{% for b in range(100000) %}`
# prints nothing while it runs 10^10 empty iterations. 200,000 steps cost at most about half
# a second of CPU (macro calls are the dearest) and are far beyond any real notification.
MAX_STEPS = 200_000
_BUDGETED_ITER = "_cronium_budgeted"
_steps_left: ContextVar[list[int] | None] = ContextVar("template_steps_left", default=None)

# Output is counted while it is produced (see `_render_bounded`); what follows bounds the
# single values that could be huge before any of them is written: `*` on strings and lists,
# `**`, the padding filters and format widths.
_MAX_POWER_BITS = 4096
# A width or precision of 7 digits or more in a format string ("%9999999s", "{:>9999999}").
_HUGE_WIDTH = re.compile(r"%[-+ #0]*(?:\*|\d{7,}|\d*\.\d{7,})|\{[^{}]*:[^{}]*\d{7,}")


def _step(count: int = 1) -> None:
    left = _steps_left.get()
    if left is None:
        return  # not rendering through render(): parsing, tests of the environment
    left[0] -= count
    if left[0] < 0:
        raise SecurityError(f"template ran more than {MAX_STEPS} steps (loops and calls)")


def _budgeted(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every `{% for %}` iterates instead of its sequence: one step per item."""
    for item in iterable:
        _step()
        yield item


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, unable to build values larger than the output limit or to run
    longer than MAX_STEPS loop iterations and calls."""

    intercepted_binops = frozenset({"*", "**"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Every for loop's sequence goes through `_budgeted`, so iterations are counted."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name(_BUDGETED_ITER, "load"), [loop.iter], [], None, None)
        return tree

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * max(count, 0) > MAX_RENDERED_CHARS:
                    raise SecurityError("repetition longer than the rendered size limit")
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and right * abs(left).bit_length() > _MAX_POWER_BITS
        ):
            raise SecurityError("power too large")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        """`"{:>9999999}".format(x)`: refuse huge widths before Python pads."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _HUGE_WIDTH.search(value.__self__):
            raise SecurityError("format width larger than the rendered size limit")
        return wrapped


def _bounded_width(name: str, filter_: Any) -> Any:
    def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > MAX_RENDERED_CHARS:
            raise SecurityError(f"{name} width larger than the rendered size limit")
        return filter_(value, width, *args, **kwargs)

    return bounded


def _bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(value, str) and _HUGE_WIDTH.search(value):
        raise SecurityError("format width larger than the rendered size limit")
    return _format_filter(value, *args, **kwargs)


# keep_trailing_newline: Jinja drops a template's final newline by default, so "{{ a }}\n"
# lost it while a parameter without a template ("abc\n") kept it. Line endings in the text
# of a template still come out as "\n" (Jinja's lexer normalises "\r\n" and "\r").
_env = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_env.globals[_BUDGETED_ITER] = _budgeted
_format_filter = _env.filters["format"]
_env.filters["format"] = _bounded_format
for _name in ("center", "indent"):
    _env.filters[_name] = _bounded_width(_name, _env.filters[_name])


def _render_bounded(template: str, context: dict[str, Any], path: str) -> str:
    """Render, stopping as soon as the output passes the limit (loops can multiply it)."""
    parts: list[str] = []
    size = 0
    budget = _steps_left.set([MAX_STEPS])
    try:
        for chunk in _env.from_string(template).generate(context):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise ToolError(
                    f"{_where(path)}: rendered to more than {MAX_RENDERED_CHARS} characters",
                    permanent=True,
                    reason="template_error",
                )
            parts.append(chunk)
    finally:
        _steps_left.reset(budget)
    return "".join(parts)


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
            out = _render_bounded(value, context, path)
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
