"""Request dependencies: the core, a database session and the authenticated principal."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.core import Core
from cronium.db.models import ApiToken, Role, User
from cronium.db.models import Session as DbSession
from cronium.errors import Forbidden, Unauthorized
from cronium.security.tokens import hash_token

SESSION_COOKIE = "cronium_session"
CSRF_COOKIE = "cronium_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Write last-used/last-seen at most this often: reads must not become writes.
_TOUCH_EVERY = timedelta(seconds=60)


async def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


CoreDep = Annotated[Core, Depends(get_core)]


async def get_db(core: CoreDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed when the handler returns normally."""
    async with core.sessions() as session, session.begin():
        yield session


# Function scope: the transaction commits before the response is sent. (Request scope
# commits after it, so a client acting on a 2xx, e.g. a page reloading after a delete,
# could still read the old rows.)
DbDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


@dataclass(frozen=True)
class Principal:
    user_id: int
    email: str
    role: Role
    via: Literal["session", "token"]
    session_id: int | None = None
    token_id: int | None = None
    # Browser sessions only: the web UI puts it into pages for the JavaScript to send back.
    csrf_token: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    @property
    def sees_all(self) -> bool:
        """Admins and viewers read every object; users read only their own."""
        return self.role in (Role.admin, Role.viewer)


def client_addr(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return value.strip()


async def from_token(db: AsyncSession, token: str) -> Principal:
    now = datetime.now(UTC)
    row = (
        await db.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(token))
        )
    ).first()
    if row is None:
        raise Unauthorized("invalid API token")
    api_token, user = row
    if api_token.revoked_at is not None:
        raise Unauthorized("API token has been revoked")
    if api_token.expires_at is not None and api_token.expires_at <= now:
        raise Unauthorized("API token has expired")
    if not user.is_active:
        raise Unauthorized("account is disabled")
    if api_token.last_used_at is None or now - api_token.last_used_at > _TOUCH_EVERY:
        await db.execute(
            update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=now)
        )
    return Principal(user.id, user.email, user.role, "token", token_id=api_token.id)


async def from_session(request: Request, db: AsyncSession, cookie: str) -> Principal:
    now = datetime.now(UTC)
    row = (
        await db.execute(
            select(DbSession, User)
            .join(User, User.id == DbSession.user_id)
            .where(DbSession.token_hash == hash_token(cookie))
        )
    ).first()
    if row is None or row[0].expires_at <= now or not row[1].is_active:
        raise Unauthorized("session expired or invalid: log in again")
    sess, user = row
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        # Bytes: compare_digest refuses str with non-ASCII characters (a header may hold any).
        if not sent or not hmac.compare_digest(sent.encode(), sess.csrf_token.encode()):
            raise Forbidden(
                f"CSRF check failed: send the {CSRF_HEADER} header from the login response",
                details={"reason": "csrf"},
            )
    if now - sess.last_seen_at > _TOUCH_EVERY:
        await db.execute(update(DbSession).where(DbSession.id == sess.id).values(last_seen_at=now))
    return Principal(
        user.id, user.email, user.role, "session", session_id=sess.id, csrf_token=sess.csrf_token
    )


async def get_principal(request: Request, db: DbDep) -> Principal:
    token = bearer_token(request)
    if token is not None:
        return await from_token(db, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await from_session(request, db, cookie)
    raise Unauthorized("authentication required: log in or send 'Authorization: Bearer <token>'")


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_writer(principal: PrincipalDep) -> Principal:
    if principal.role is Role.viewer:
        raise Forbidden("viewers have read-only access")
    return principal


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden("only admins may do this")
    return principal


WriterDep = Annotated[Principal, Depends(require_writer)]
AdminDep = Annotated[Principal, Depends(require_admin)]
