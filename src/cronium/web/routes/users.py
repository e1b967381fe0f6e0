"""The users page (admins only): accounts with their role, state and last sign-in, and the
pending invitations. Every change goes through /api/v1/users from the browser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from cronium.api.deps import DbDep
from cronium.api.listing import PageParams, paginate
from cronium.db.models import Role, User
from cronium.domain import invitations
from cronium.security.passwords import MIN_PASSWORD_LENGTH
from cronium.web.deps import PageAdmin
from cronium.web.pages import is_htmx, list_url
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
ROLES = [(r.value, r.value) for r in Role]


@router.get("/admin/users", response_class=HTMLResponse)
async def users_page(
    request: Request,
    principal: PageAdmin,
    db: DbDep,
    search: Annotated[str, Query(max_length=320)] = "",
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HTMLResponse:
    search = search.replace("\x00", "").strip()
    stmt = select(User)
    if search:
        stmt = stmt.where(User.email.icontains(search, autoescape=True))
    users, total = await paginate(
        db, stmt.order_by(User.email, User.id), PageParams(PAGE_SIZE, offset, None)
    )
    query = {"search": search, "offset": offset}
    common: dict[str, Any] = {
        "users": users,
        "total": total,
        "offset": offset,
        "page_size": PAGE_SIZE,
        "search": search,
        "url": lambda **changes: list_url("/admin/users", query, **changes),
        "roles": ROLES,
        "min_length": MIN_PASSWORD_LENGTH,
    }
    if is_htmx(request):
        return render(request, "users/_table.html", principal, title="Users", **common)
    pending, pending_total = await invitations.pending(db, PAGE_SIZE, 0)
    return render(
        request,
        "users/index.html",
        principal,
        title="Users",
        invitations=pending,
        invitations_total=pending_total,
        now=datetime.now(UTC),
        **common,
    )
