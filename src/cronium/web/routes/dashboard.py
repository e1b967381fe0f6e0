"""The dashboard: the first page after signing in."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cronium.web.deps import PageUser
from cronium.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, principal: PageUser) -> HTMLResponse:
    return render(request, "dashboard.html", principal, title="Dashboard")
