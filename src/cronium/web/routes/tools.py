"""Tools pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cronium.web.deps import PageUser
from cronium.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/credentials", response_class=HTMLResponse)
async def tools_page(request: Request, principal: PageUser) -> HTMLResponse:
    return render(request, "placeholder.html", principal, title="Tools")
