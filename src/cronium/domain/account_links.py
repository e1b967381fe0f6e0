"""Single-use emailed links (password resets, invitations): issue, look up and consume.

The link carries a random token; only its SHA-256 is stored. Consuming is one conditional
UPDATE, so two clicks racing each other cannot both win.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.db.models import AccountToken, Role
from cronium.errors import CroniumError
from cronium.security.tokens import hash_token, new_token

Kind = Literal["reset", "invite"]
MAX_TOKEN_LENGTH = 200


class LinkInvalid(CroniumError):
    """The token is not one Cronium issued (mistyped, cut off, or for another purpose)."""

    status_code = 400
    code = "invalid_link"


class LinkGone(CroniumError):
    """The link was real but can no longer be used: used, expired or revoked."""

    status_code = 410
    code = "link_gone"


_WHAT = {"reset": "password reset link", "invite": "invitation link"}


def issue(
    db: AsyncSession,
    kind: Kind,
    email: str,
    *,
    ttl: timedelta,
    user_id: int | None = None,
    role: Role | None = None,
    created_by: int | None = None,
) -> tuple[AccountToken, str]:
    """A new link row (added to the session) and the token to put into the emailed URL."""
    token = new_token()
    row = AccountToken(
        kind=kind,
        token_hash=hash_token(token),
        email=email,
        user_id=user_id,
        role=role,
        created_by=created_by,
        expires_at=datetime.now(UTC) + ttl,
    )
    db.add(row)
    return row, token


def _refusal(kind: Kind, row: AccountToken | None, now: datetime) -> CroniumError | None:
    what = _WHAT[kind]
    if row is None or row.kind != kind:
        return LinkInvalid(f"this {what} is not valid: check that it was copied whole")
    if row.used_at is not None:
        return LinkGone(f"this {what} has already been used", details={"reason": "used"})
    if row.revoked_at is not None:
        return LinkGone(f"this {what} has been withdrawn", details={"reason": "revoked"})
    if row.expires_at <= now:
        return LinkGone(
            f"this {what} has expired: ask for a new one", details={"reason": "expired"}
        )
    return None


async def inspect(db: AsyncSession, kind: Kind, token: str) -> AccountToken:
    """The usable link for `token`, or the error saying why it cannot be used."""
    row = None
    if token and len(token) <= MAX_TOKEN_LENGTH:
        row = await db.scalar(
            select(AccountToken).where(AccountToken.token_hash == hash_token(token))
        )
    refusal = _refusal(kind, row, datetime.now(UTC))
    if refusal is not None:
        raise refusal
    assert row is not None
    return row


async def consume(db: AsyncSession, kind: Kind, token: str) -> AccountToken:
    """Mark the link used, exactly once; the loser of a race gets 'already used'."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise LinkInvalid(f"this {_WHAT[kind]} is not valid: check that it was copied whole")
    now = datetime.now(UTC)
    row: AccountToken | None = await db.scalar(
        update(AccountToken)
        .where(
            AccountToken.token_hash == hash_token(token),
            AccountToken.kind == kind,
            AccountToken.used_at.is_(None),
            AccountToken.revoked_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(AccountToken)
    )
    if row is None:
        await inspect(db, kind, token)  # raises the reason
        raise LinkGone(f"this {_WHAT[kind]} has already been used")  # pragma: no cover
    return row


async def revoke_pending(db: AsyncSession, kind: Kind, email: str) -> None:
    """Withdraw every unused link of this kind for this address (a new one replaces them)."""
    await db.execute(
        update(AccountToken)
        .where(
            AccountToken.kind == kind,
            AccountToken.email == email,
            AccountToken.used_at.is_(None),
            AccountToken.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )


def link(base_url: str, path: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{path}?{urlencode({'token': token})}"
