"""Invitations: an admin invites an address with a role; the single-use link creates the
account with a password the invited person chooses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.db.models import AccountToken, Role, User
from cronium.domain import account_links
from cronium.domain.accounts import create_user, find_user, normalise_email
from cronium.domain.app_settings import AccountSettings
from cronium.errors import Conflict, NotFound

ACCEPT_PATH = "/accept-invite"


async def invite(
    db: AsyncSession, email: str, role: Role, accounts: AccountSettings, created_by: int
) -> tuple[AccountToken, str]:
    """A new invitation (replacing a pending one for the same address) and its token."""
    email = normalise_email(email)
    if await find_user(db, email) is not None:
        raise Conflict(f"a user with email {email} already exists", details={"field": "email"})
    await account_links.revoke_pending(db, "invite", email)
    ttl = timedelta(hours=accounts.invitation_ttl_hours)
    row, token = account_links.issue(db, "invite", email, ttl=ttl, role=role, created_by=created_by)
    await db.flush()
    await db.refresh(row)
    return row, token


async def pending(db: AsyncSession, limit: int, offset: int) -> tuple[list[AccountToken], int]:
    """Invitations not yet accepted or withdrawn (expired ones too: they may be re-sent)."""
    where = (
        AccountToken.kind == "invite",
        AccountToken.used_at.is_(None),
        AccountToken.revoked_at.is_(None),
    )
    total = int(await db.scalar(select(func.count()).select_from(AccountToken).where(*where)) or 0)
    rows = await db.scalars(
        select(AccountToken)
        .where(*where)
        .order_by(AccountToken.created_at.desc(), AccountToken.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


async def revoke(db: AsyncSession, invitation_id: int) -> AccountToken:
    row: AccountToken | None = await db.scalar(
        update(AccountToken)
        .where(
            AccountToken.id == invitation_id,
            AccountToken.kind == "invite",
            AccountToken.used_at.is_(None),
            AccountToken.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
        .returning(AccountToken)
    )
    if row is None:
        raise NotFound(f"invitation {invitation_id} not found (or already accepted or revoked)")
    return row


async def accept(db: AsyncSession, token: str, password: str) -> User:
    """Consume the link and create the account, both or neither (one transaction)."""
    row = await account_links.consume(db, "invite", token)
    user = await create_user(db, row.email, password, row.role or Role.user)
    row.user_id = user.id
    return user


def message(url: str, hours: int, inviter: str, role: Role) -> tuple[str, str, str]:
    """(subject, text, html) of the invitation email."""
    lifetime = f"{hours // 24} day(s)" if hours % 24 == 0 else f"{hours} hours"
    text = (
        f"{inviter} invited you to Cronium as {role.value}.\n\n"
        f"Choose your password here (the link works once, for {lifetime}):\n{url}\n"
    )
    html = (
        f"<p>{escape(inviter)} invited you to Cronium as {role.value}.</p>"
        f'<p><a href="{escape(url)}">Choose your password</a> '
        f"(the link works once, for {lifetime}).</p>"
    )
    return "You are invited to Cronium", text, html
