"""Password reset by email: a single-use link that sets a new password and ends sessions."""

from __future__ import annotations

from datetime import timedelta
from html import escape

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.db.models import Session as DbSession
from cronium.db.models import User
from cronium.domain import account_links, audit
from cronium.domain.accounts import find_user
from cronium.domain.app_settings import AccountSettings
from cronium.errors import ValidationFailed
from cronium.security.passwords import MIN_PASSWORD_LENGTH, hash_password

RESET_PATH = "/reset-password"


async def start(
    db: AsyncSession, email: str, accounts: AccountSettings, base_url: str, addr: str | None
) -> tuple[str, str] | None:
    """A new link for an active account, replacing older ones: (address, URL); else None."""
    user = await find_user(db, email)
    if user is None or not user.is_active:
        return None
    await account_links.revoke_pending(db, "reset", user.email)
    ttl = timedelta(minutes=accounts.reset_ttl_minutes)
    row, token = account_links.issue(db, "reset", user.email, ttl=ttl, user_id=user.id)
    await db.flush()
    audit.record(
        db,
        "password_reset.request",
        actor_user_id=user.id,
        actor=user.email,
        client_addr=addr,
        target_type="user",
        target_id=user.id,
        details={"link_id": row.id},
    )
    return user.email, account_links.link(base_url, RESET_PATH, token)


async def finish(db: AsyncSession, token: str, password: str, addr: str | None) -> User:
    """Consume the link, set the password, end every session of the account, audit it."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters",
            details={"field": "password"},
        )
    row = await account_links.consume(db, "reset", token)
    user = await db.get(User, row.user_id, with_for_update=True) if row.user_id else None
    if user is None or not user.is_active:
        raise account_links.LinkGone(
            "this password reset link belongs to an account that is disabled or gone",
            details={"reason": "account"},
        )
    user.password_hash = hash_password(password)
    await db.execute(delete(DbSession).where(DbSession.user_id == user.id))
    await account_links.revoke_pending(db, "reset", user.email)
    audit.record(
        db,
        "password_reset.complete",
        actor_user_id=user.id,
        actor=user.email,
        client_addr=addr,
        target_type="user",
        target_id=user.id,
        details={"link_id": row.id},
    )
    return user


def message(url: str, minutes: int) -> tuple[str, str, str]:
    """(subject, text, html) of the reset email."""
    lifetime = f"{minutes // 60} hour(s)" if minutes % 60 == 0 else f"{minutes} minutes"
    text = (
        "Someone asked to reset the password of your Cronium account.\n\n"
        f"Set a new password here (the link works once, for {lifetime}):\n{url}\n\n"
        "If that was not you, ignore this message: your password stays as it is.\n"
    )
    html = (
        "<p>Someone asked to reset the password of your Cronium account.</p>"
        f'<p><a href="{escape(url)}">Set a new password</a> '
        f"(the link works once, for {lifetime}).</p>"
        "<p>If that was not you, ignore this message: your password stays as it is.</p>"
    )
    return "Reset your Cronium password", text, html
