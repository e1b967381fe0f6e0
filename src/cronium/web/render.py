"""Template rendering: one Jinja2 environment, the common page context and filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from cronium import __version__
from cronium.api.deps import Principal
from cronium.db.models import Role
from cronium.web.pages import is_htmx

WEB_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))

# (path, label, admin only): the navigation, in order.
NAV = (
    ("/", "Dashboard", False),
    ("/events", "Events", False),
    ("/workflows", "Workflows", False),
    ("/executions", "Runs", False),
    ("/servers", "Servers", False),
    ("/variables", "Variables", False),
    ("/credentials", "Tools", False),
    ("/monitoring", "Monitoring", False),
    ("/admin/users", "Users", True),
    ("/settings", "Settings", True),
)


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = (datetime.now(UTC) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size or unit == "s":
            amount = f"{int(seconds // size)} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "now"  # pragma: no cover


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def _status(value: object) -> Markup:
    text = str(getattr(value, "value", value))
    return Markup('<span class="badge status-{0}">{0}</span>').format(text)


def _tojson_attr(value: Any) -> str:
    """JSON for a data- attribute (Jinja escapes the quotes)."""
    return json.dumps(value, default=str)


templates.env.filters.update(
    when=_when, ago=_ago, duration=_duration, status=_status, json_attr=_tojson_attr
)
templates.env.globals["version"] = __version__


def render(
    request: Request,
    template: str,
    principal: Principal | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page (or an HTMX fragment) with what every template may use."""
    nav = [
        (path, label)
        for path, label, admin_only in NAV
        if not admin_only or (principal is not None and principal.role is Role.admin)
    ]
    common = {
        "principal": principal,
        "can_write": principal is not None and principal.role is not Role.viewer,
        "is_admin": principal is not None and principal.role is Role.admin,
        "csrf_token": principal.csrf_token if principal else "",
        "nav": nav,
        "path": request.url.path,
        "htmx": is_htmx(request),
    }
    return templates.TemplateResponse(
        request, template, {**common, **context}, status_code=status_code
    )
