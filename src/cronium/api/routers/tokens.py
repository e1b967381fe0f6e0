"""The caller's own API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import select

from cronium.api.deps import DbDep, PrincipalDep, client_addr
from cronium.api.listing import Page, PageDep, apply_sort, paginate
from cronium.api.schemas.accounts import TokenCreate, TokenCreated, TokenOut
from cronium.api.schemas.events import MAX_ID
from cronium.db.models import ApiToken
from cronium.domain import audit
from cronium.domain.accounts import create_api_token
from cronium.errors import NotFound, ValidationFailed

router = APIRouter(prefix="/tokens", tags=["tokens"])

TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="The token's id.")]
_SORTS = {"name": ApiToken.name, "created_at": ApiToken.created_at}


@router.get("", response_model=Page[TokenOut])
async def list_tokens(
    principal: PrincipalDep, db: DbDep, page: PageDep, include_revoked: bool = False
) -> Page[TokenOut]:
    """List your API tokens (the secret is never shown again; the prefix tells them apart)."""
    stmt = select(ApiToken).where(ApiToken.user_id == principal.user_id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    stmt = apply_sort(stmt, page.sort, _SORTS, "-created_at", ApiToken.id)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[TokenOut.model_validate(t) for t in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=TokenCreated, status_code=201)
async def add_token(
    body: TokenCreate, request: Request, principal: PrincipalDep, db: DbDep
) -> TokenCreated:
    """Create an API token. The response holds the token; it is shown only once."""
    if body.expires_at is not None and body.expires_in_days is not None:
        raise ValidationFailed(
            "give expires_at or expires_in_days, not both", details={"field": "expires_at"}
        )
    expires_at = body.expires_at
    if body.expires_in_days is not None:
        expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days)
    row, token = await create_api_token(db, principal.user_id, body.name, expires_at)
    audit.record(
        db,
        "token.create",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
        target_type="api_token",
        target_id=row.id,
        details={"name": row.name},
    )
    await db.refresh(row)
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=token)


@router.delete("/{token_id}", status_code=204)
async def revoke_token(
    token_id: TokenId, request: Request, principal: PrincipalDep, db: DbDep
) -> Response:
    """Revoke one of your tokens; it stops working at once."""
    row = await db.get(ApiToken, token_id, with_for_update=True)
    if row is None or row.user_id != principal.user_id or row.revoked_at is not None:
        raise NotFound(f"token {token_id} not found")
    row.revoked_at = datetime.now(UTC)
    audit.record(
        db,
        "token.revoke",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
        target_type="api_token",
        target_id=row.id,
        details={"name": row.name},
    )
    return Response(status_code=204)
