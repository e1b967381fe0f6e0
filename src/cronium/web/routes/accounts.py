"""Account pages without a session: sign in and out, forgotten password, the reset and
invitation links from emails. Their forms post to the REST API from the browser; the link
pages check the token first so a used or expired link says so before anyone types."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cronium.api.deps import SESSION_COOKIE, DbDep
from cronium.domain import account_links
from cronium.errors import CroniumError
from cronium.security.passwords import MIN_PASSWORD_LENGTH
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

Token = Annotated[str, Query(max_length=500)]


def _safe_next(value: str | None) -> str:
    """Only same-site paths: `//evil.example` or a URL would make an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\\\" in value:
        return "/"
    return value


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, next: str | None = None, reset: str | None = None
) -> Response:
    notice = "Your password was changed. Sign in with the new one." if reset == "done" else ""
    return render(
        request, "login.html", None, title="Sign in", next=_safe_next(next), notice=notice
    )


@router.get("/logout")
async def logout_page(request: Request) -> Response:
    """Without a session there is nothing to end; with one, the page's button POSTs."""
    if not request.cookies.get(SESSION_COOKIE):
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html", None, title="Sign out")


@router.get("/forgot-password", response_class=HTMLResponse)
async def forgot_password_page(request: Request) -> Response:
    return render(request, "accounts/forgot_password.html", None, title="Forgot password")


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(request: Request, db: DbDep, token: Token = "") -> Response:
    try:
        await account_links.inspect(db, "reset", token)
    except CroniumError as exc:
        return render(
            request,
            "accounts/link_refused.html",
            None,
            exc.status_code,
            title="Reset password",
            message=exc.message,
            retry=("/forgot-password", "Ask for a new link"),
        )
    return render(
        request,
        "accounts/reset_password.html",
        None,
        title="Reset password",
        token=token,
        min_length=MIN_PASSWORD_LENGTH,
    )


@router.get("/accept-invite", response_class=HTMLResponse)
async def accept_invite_page(request: Request, db: DbDep, token: Token = "") -> Response:
    try:
        invitation = await account_links.inspect(db, "invite", token)
    except CroniumError as exc:
        return render(
            request,
            "accounts/link_refused.html",
            None,
            exc.status_code,
            title="Accept invitation",
            message=exc.message + " (ask the admin who invited you for a new invitation)",
            retry=("/login", "Sign in"),
        )
    return render(
        request,
        "accounts/accept_invite.html",
        None,
        title="Accept invitation",
        token=token,
        invitation=invitation,
        min_length=MIN_PASSWORD_LENGTH,
    )
