"""Account rules shared by the API and the CLI: users, sessions, API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.db.models import ApiToken, Role, User
from cronium.db.models import Session as DbSession
from cronium.errors import Conflict, NotFound, ValidationFailed
from cronium.security.passwords import MIN_PASSWORD_LENGTH, hash_password
from cronium.security.tokens import API_TOKEN_PREFIX, display_prefix, hash_token, new_token


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def find_user(db: AsyncSession, email: str) -> User | None:
    return await db.scalar(select(User).where(User.email == normalise_email(email)))


# Taken by every change to users before any user row is locked (see lock_user_changes).
# Advisory lock keys share one space per database: 7465301 migrations, 7465302 core,
# 7465303 the scheduler's leader lock (held for as long as the leader lives).
_USER_CHANGE_LOCK = 7465304


async def lock_user_changes(db: AsyncSession) -> None:
    """Serialise user changes for the rest of the transaction.

    Without it two admins demoting, disabling or deleting each other at once could both
    see the other as the remaining active admin, or deadlock on each other's rows (the
    audit row of one references the user row the other has locked).
    """
    await db.execute(select(func.pg_advisory_xact_lock(_USER_CHANGE_LOCK)))


async def create_user(db: AsyncSession, email: str, password: str, role: Role) -> User:
    email = normalise_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters",
            details={"field": "password"},
        )
    password_hash = hash_password(password)
    await lock_user_changes(db)  # two creates of one email: the second sees the first
    if await find_user(db, email) is not None:
        raise Conflict(f"a user with email {email} already exists", details={"field": "email"})
    user = User(email=email, password_hash=password_hash, role=role)
    db.add(user)
    await db.flush()
    return user


async def count_active_admins(db: AsyncSession, *, excluding: int | None = None) -> int:
    stmt = select(func.count()).select_from(User).where(User.role == Role.admin, User.is_active)
    if excluding is not None:
        stmt = stmt.where(User.id != excluding)
    return int(await db.scalar(stmt) or 0)


async def create_session(
    db: AsyncSession, user: User, *, ttl_s: int, client_addr: str | None, user_agent: str | None
) -> tuple[DbSession, str]:
    """A new session (never reusing a client-supplied id: no fixation); returns (row, cookie)."""
    cookie = new_token()
    row = DbSession(
        token_hash=hash_token(cookie),
        user_id=user.id,
        csrf_token=new_token(n_bytes=24),
        client_addr=client_addr,
        user_agent=(user_agent or "")[:512] or None,
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
    )
    db.add(row)
    await db.flush()
    return row, cookie


async def create_api_token(
    db: AsyncSession, user_id: int, name: str, expires_at: datetime | None
) -> tuple[ApiToken, str]:
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValidationFailed(
                "expires_at needs a timezone (e.g. 2030-01-01T00:00:00Z)",
                details={"field": "expires_at"},
            )
        try:
            expires_at = expires_at.astimezone(UTC)
        except OverflowError:
            raise ValidationFailed(
                "expires_at is out of range", details={"field": "expires_at"}
            ) from None
        if expires_at <= datetime.now(UTC):
            raise ValidationFailed(
                "expires_at must be in the future", details={"field": "expires_at"}
            )
    name = name.strip()
    if not name:
        raise ValidationFailed("name must not be blank", details={"field": "name"})
    if "\x00" in name:
        raise ValidationFailed("name must not contain NUL characters", details={"field": "name"})
    clash = await db.scalar(
        select(ApiToken.id).where(
            ApiToken.user_id == user_id, ApiToken.name == name, ApiToken.revoked_at.is_(None)
        )
    )
    if clash is not None:
        raise Conflict(
            f"you already have an active token named {name!r}", details={"field": "name"}
        )
    token = new_token(API_TOKEN_PREFIX)
    row = ApiToken(
        user_id=user_id,
        name=name,
        prefix=display_prefix(token),
        token_hash=hash_token(token),
        expires_at=expires_at,
    )
    db.add(row)
    await db.flush()
    return row, token


async def require_user(db: AsyncSession, email: str) -> User:
    user = await find_user(db, email)
    if user is None:
        raise NotFound(f"no user with email {normalise_email(email)}")
    return user
