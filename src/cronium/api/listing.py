"""Pagination, sorting and ownership rules shared by every list and detail route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import AfterValidator, BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from cronium.api.deps import Principal
from cronium.errors import Conflict, NotFound, ValidationFailed

T = TypeVar("T")
ModelT = TypeVar("ModelT")
MAX_OFFSET = 2**63 - 1  # PostgreSQL bigint


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int
    sort: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page (1-200).")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
    sort: Annotated[
        str | None, Query(max_length=64, description="Field to sort by; prefix '-' for descending.")
    ] = None,
) -> PageParams:
    return PageParams(limit, offset, sort)


PageDep = Annotated[PageParams, Depends(page_params)]


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL: refuse it here instead of failing in the query.
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Search = Annotated[
    str | None,
    Query(max_length=200, description="Case-insensitive substring to look for."),
    AfterValidator(_no_nul),
]


def apply_sort(
    stmt: Select[Any],
    sort: str | None,
    allowed: dict[str, InstrumentedAttribute[Any]],
    default: str,
    tiebreak: InstrumentedAttribute[Any],
) -> Select[Any]:
    spec = sort or default
    descending = spec.startswith("-")
    name = spec.lstrip("-")
    column = allowed.get(name)
    if column is None:
        raise ValidationFailed(
            f"cannot sort by {name!r}; choose one of: {', '.join(sorted(allowed))}",
            details={"field": "sort"},
        )
    order = column.desc() if descending else column.asc()
    return stmt.order_by(order, tiebreak.desc() if descending else tiebreak.asc())


async def paginate(
    db: AsyncSession, stmt: Select[Any], params: PageParams
) -> tuple[list[Any], int]:
    total = await db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = (await db.scalars(stmt.limit(params.limit).offset(params.offset))).all()
    return list(rows), int(total or 0)


def visible(
    stmt: Select[Any], owner_col: InstrumentedAttribute[int], principal: Principal
) -> Select[Any]:
    """Restrict a query to what the principal may read."""
    return stmt if principal.sees_all else stmt.where(owner_col == principal.user_id)


async def get_visible(
    db: AsyncSession,
    model: type[ModelT],
    object_id: int,
    principal: Principal,
    *,
    for_write: bool = False,
    lock: bool | None = None,
    what: str | None = None,
) -> ModelT:
    """Load one object the principal may read (or change); a foreign object is a 404.

    Answering 404 rather than 403 does not reveal that another user's object exists.
    `lock` (default: `for_write`) locks the row (FOR NO KEY UPDATE). Pass lock=False if the
    change is made on another connection, which would otherwise wait on this lock forever.
    """
    lock = for_write if lock is None else lock
    # FOR NO KEY UPDATE: ids never change, and unlike FOR UPDATE it lets other
    # transactions insert rows referencing this one (audit rows, runs) meanwhile.
    obj = await db.get(model, object_id, with_for_update={"key_share": True} if lock else False)
    owner_id = getattr(obj, "owner_id", None)
    allowed = obj is not None and (
        principal.is_admin
        or owner_id == principal.user_id
        or (principal.sees_all and not for_write)
    )
    if not allowed:
        label = what or getattr(model, "__tablename__", "object").rstrip("s")
        raise NotFound(f"{label} {object_id} not found")
    assert obj is not None
    return obj


async def flush_unique(
    db: AsyncSession, constraint: str, what: str, field: str, value: str
) -> None:
    """Flush; a concurrent request that took the same name loses with a 409, not a 500."""
    try:
        await db.flush()
    except IntegrityError as exc:
        if constraint not in str(exc.orig):
            raise
        raise Conflict(
            f"you already have a {what} named {value!r}", details={"field": field}
        ) from None
