"""Variables pages: the list (secret values masked, never decrypted) and the form.

Changes go through the REST API from the browser; a secret's value is write-only, so the
edit form leaves it empty and an empty value means "keep the stored one".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import or_, select

from cronium.api.deps import DbDep
from cronium.api.listing import PageParams, get_visible, paginate, visible
from cronium.db.models import Variable
from cronium.web.deps import PageUser
from cronium.web.pages import is_htmx, list_url, owner_emails, require_writer
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
SHOWN_CHARS = 200  # of a plain value in the list
MASK = "••••••"
READ_ONLY = "Viewers can look at variables but not change them."


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
    found, total = await paginate(
        db, stmt.order_by(Variable.key, Variable.id), PageParams(PAGE_SIZE, offset, None)
    )
    rows = [_row(v) for v in found]
    query = {"search": search, "kind": kind, "offset": offset}
    template = "variables/_table.html" if is_htmx(request) else "variables/list.html"
    return render(
        request,
        template,
        principal,
        title="Variables",
        variables=rows,
        owners=await owner_emails(db, principal, (r.owner_id for r in rows)),
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        search=search,
        kind=kind,
        url=lambda **changes: list_url("/variables", query, **changes),
    )


@router.get("/variables/new", response_class=HTMLResponse)
async def new_variable_page(request: Request, principal: PageUser) -> HTMLResponse:
    require_writer(principal, READ_ONLY)
    return render(
        request, "variables/form.html", principal, title="New variable", var=None, value=""
    )


@router.get("/variables/{variable_id}/edit", response_class=HTMLResponse)
async def edit_variable_page(
    request: Request, variable_id: int, principal: PageUser, db: DbDep
) -> HTMLResponse:
    require_writer(principal, READ_ONLY)
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
