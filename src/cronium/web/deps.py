"""Who is looking at a page: the session cookie's user, or a redirect to the login page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from cronium.api.deps import SESSION_COOKIE, DbDep, Principal, from_session
from cronium.db.models import Role
from cronium.errors import CroniumError


class LoginRequired(Exception):
    """Raised by page dependencies; the handler in `setup` turns it into a redirect."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbidden(Exception):
    """A signed-in user asked for a page their role does not allow (rendered as 403)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")


async def page_principal(request: Request, db: DbDep) -> Principal:
    """Pages accept only browser sessions (no bearer tokens): they are for people."""
    cookie = request.cookies.get(SESSION_COOKIE)
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not cookie:
        raise LoginRequired(next_path)
    try:
        return await from_session(request, db, cookie)
    except CroniumError as exc:
        if exc.status_code == 401:
            raise LoginRequired(next_path) from exc
        raise


PageUser = Annotated[Principal, Depends(page_principal)]


async def page_admin(principal: PageUser) -> Principal:
    if principal.role is not Role.admin:
        raise PageForbidden("Only admins may open this page.")
    return principal


PageAdmin = Annotated[Principal, Depends(page_admin)]
