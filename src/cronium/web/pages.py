"""Helpers the page routes share: who may open a form, list pages (counting, paging, links
to other pages of the same list, owner emails) and whether HTMX asked for a fragment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.deps import Principal
from cronium.api.schemas.events import MAX_ID
from cronium.db.models import Role, User
from cronium.web.deps import PageForbidden


def require_writer(principal: Principal, message: str) -> None:
    """Viewers read every page but open no form that changes something (a 403 page)."""
    if principal.role is Role.viewer:
        raise PageForbidden(message)


async def owner_emails(
    db: AsyncSession, principal: Principal, owner_ids: Iterable[int]
) -> dict[int, str]:
    """The owners' emails by user id, for the owner column only those who see all get."""
    ids = set(owner_ids)
    if not principal.sees_all or not ids:
        return {}
    rows = await db.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {int(user_id): str(email) for user_id, email in rows.all()}


async def count_rows(db: AsyncSession, stmt: Select[*tuple[Any, ...]]) -> int:
    """How many rows a list query finds, before paging."""
    total = await db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    return int(total or 0)


def list_url(path: str, query: Mapping[str, Any], **changes: Any) -> str:
    """The list page at `path` with its query string changed: a filter, the sort, the page.

    Empty values (None, "", 0) are left out, so the URL names only what differs from the
    defaults; enum members stand as their values.
    """
    merged = {
        key: getattr(value, "value", value)
        for key, value in {**query, **changes}.items()
        if value not in (None, "", 0)
    }
    return path + ("?" + urlencode(merged) if merged else "")


def lenient_offset(value: str | None) -> int:
    """A paging offset from a hand-edited URL: anything odd means the first page."""
    try:
        return min(max(int(value or 0), 0), MAX_ID)
    except ValueError:
        return 0


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def wants_fragment(request: Request) -> bool:
    """An HTMX swap wants the fragment; HTMX restoring history (cache miss) the whole page."""
    return is_htmx(request) and not request.headers.get("hx-history-restore-request")
