"""Login and logout pages (the login form posts to the REST API from the browser)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cronium.api.deps import SESSION_COOKIE
from cronium.web.render import render

router = APIRouter(include_in_schema=False)


def _safe_next(value: str | None) -> str:
    """Only same-site paths: `//evil.example` or a URL would make an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\\\" in value:
        return "/"
    return value


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", None, title="Sign in", next=_safe_next(next))


@router.get("/logout")
async def logout_page(request: Request) -> Response:
    """Without a session there is nothing to end; with one, the page's button POSTs."""
    if not request.cookies.get(SESSION_COOKIE):
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html", None, title="Sign out")
