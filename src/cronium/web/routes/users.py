"""The users page (admins only): accounts with their role, state and last sign-in, and the
pending invitations. Every change goes through /api/v1/users from the browser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from cronium.api.deps import DbDep
from cronium.db.models import Role, User
from cronium.domain import invitations
from cronium.security.passwords import MIN_PASSWORD_LENGTH
from cronium.web.deps import PageAdmin
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
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    users = await db.scalars(stmt.order_by(User.email, User.id).limit(PAGE_SIZE).offset(offset))

    def url(**changes: object) -> str:
        query: dict[str, object] = {"search": search, "offset": offset}
        query.update(changes)
        return "/admin/users?" + urlencode(
            {k: v for k, v in query.items() if v not in ("", None, 0)}
        )

    common: dict[str, Any] = {
        "users": list(users),
        "total": total,
        "offset": offset,
        "page_size": PAGE_SIZE,
        "search": search,
        "url": url,
        "roles": ROLES,
        "min_length": MIN_PASSWORD_LENGTH,
    }
    if request.headers.get("hx-request"):
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
