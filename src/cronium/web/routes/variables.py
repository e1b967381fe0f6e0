"""Variables pages: the list (secret values masked, never decrypted) and the form.

Changes go through the REST API from the browser; a secret's value is write-only, so the
edit form leaves it empty and an empty value means "keep the stored one".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, or_, select

from cronium.api.deps import DbDep, Principal
from cronium.api.listing import get_visible, visible
from cronium.db.models import Role, User, Variable
from cronium.web.deps import PageForbidden, PageUser
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
SHOWN_CHARS = 200  # of a plain value in the list
MASK = "••••••"


@dataclass(frozen=True)
class VariableRow:
    id: int
    owner_id: int
    key: str
    secret: bool
    shown: str  # the plain value as text (shortened), or the mask for a secret
    description: str
    updated_at: datetime


def value_text(value: Any) -> str:
    """A plain value as the form edits it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _row(var: Variable) -> VariableRow:
    if var.secret:
        shown = MASK  # the encrypted value is never decrypted for a page
    else:
        text = value_text(var.value)
        shown = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"
    return VariableRow(
        var.id, var.owner_id, var.key, var.secret, shown, var.description, var.updated_at
    )


def _writer(principal: Principal) -> None:
    if principal.role is Role.viewer:
        raise PageForbidden("Viewers can look at variables but not change them.")


@router.get("/variables", response_class=HTMLResponse)
async def variables_page(
    request: Request,
    principal: PageUser,
    db: DbDep,
    search: Annotated[str, Query(max_length=200)] = "",
    kind: Annotated[str, Query(pattern="^(|plain|secret)$")] = "",
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HTMLResponse:
    search = search.replace("\x00", "").strip()
    stmt = visible(select(Variable), Variable.owner_id, principal)
    if kind:
        stmt = stmt.where(Variable.secret.is_(kind == "secret"))
    if search:
        stmt = stmt.where(
            or_(
                Variable.key.icontains(search, autoescape=True),
                Variable.description.icontains(search, autoescape=True),
            )
        )
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    found = await db.scalars(
        stmt.order_by(Variable.key, Variable.id).limit(PAGE_SIZE).offset(offset)
    )
    rows = [_row(v) for v in found]
    owners: dict[int, str] = {}
    if principal.sees_all and rows:
        result = await db.execute(
            select(User.id, User.email).where(User.id.in_({r.owner_id for r in rows}))
        )
        owners = {int(row[0]): str(row[1]) for row in result}

    def url(**changes: object) -> str:
        query: dict[str, object] = {"search": search, "kind": kind, "offset": offset}
        query.update(changes)
        return "/variables?" + urlencode({k: v for k, v in query.items() if v not in ("", None)})

    template = (
        "variables/_table.html" if request.headers.get("hx-request") else "variables/list.html"
    )
    return render(
        request,
        template,
        principal,
        title="Variables",
        variables=rows,
        owners=owners,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        search=search,
        kind=kind,
        url=url,
    )


@router.get("/variables/new", response_class=HTMLResponse)
async def new_variable_page(request: Request, principal: PageUser) -> HTMLResponse:
    _writer(principal)
    return render(
        request, "variables/form.html", principal, title="New variable", var=None, value=""
    )


@router.get("/variables/{variable_id}/edit", response_class=HTMLResponse)
async def edit_variable_page(
    request: Request, variable_id: int, principal: PageUser, db: DbDep
) -> HTMLResponse:
    _writer(principal)
    var = await get_visible(
        db, Variable, variable_id, principal, for_write=True, lock=False, what="variable"
    )
    return render(
        request,
        "variables/form.html",
        principal,
        title=f"Edit {var.key}",
        var=var,
        value="" if var.secret else value_text(var.value),
        is_json=not var.secret and not isinstance(var.value, str),
    )
