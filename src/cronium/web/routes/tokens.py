"""The API tokens page: your own tokens by name and prefix; a new token is shown once, in
the page that created it, and never again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from cronium.api.deps import DbDep
from cronium.db.models import ApiToken
from cronium.web.deps import PageUser
from cronium.web.pages import is_htmx, list_url
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


@router.get("/tokens", response_class=HTMLResponse)
async def api_tokens_page(
    request: Request,
    principal: PageUser,
    db: DbDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HTMLResponse:
    where = (ApiToken.user_id == principal.user_id, ApiToken.revoked_at.is_(None))
    total = int(await db.scalar(select(func.count()).select_from(ApiToken).where(*where)) or 0)
    tokens = await db.scalars(
        select(ApiToken)
        .where(*where)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        .limit(PAGE_SIZE)
        .offset(offset)
    )
    template = "tokens/_table.html" if is_htmx(request) else "tokens/index.html"
    return render(
        request,
        template,
        principal,
        title="API tokens",
        tokens=list(tokens),
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        now=datetime.now(UTC),
        url=lambda **changes: list_url("/tokens", {}, **changes),
    )
