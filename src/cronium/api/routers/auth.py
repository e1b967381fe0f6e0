"""Login, logout and the current user."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from sqlalchemy import delete

from cronium.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CoreDep,
    DbDep,
    PrincipalDep,
    client_addr,
)
from cronium.api.schemas.accounts import LoginIn, LoginOut, UserOut
from cronium.core import Core
from cronium.db.models import Session as DbSession
from cronium.db.models import User
from cronium.domain import audit
from cronium.domain.accounts import create_session, find_user, normalise_email
from cronium.errors import RateLimited, Unauthorized, ValidationFailed
from cronium.security.passwords import hash_password, needs_rehash, verify_password

router = APIRouter(prefix="/auth", tags=["auth"])

# Failed attempts per account, and all attempts per client address.
ACCOUNT_FAILURES_LIMIT, ACCOUNT_WINDOW_S = 10, 15 * 60
CLIENT_ATTEMPTS_LIMIT, CLIENT_WINDOW_S = 30, 5 * 60


async def _check_login_limits(core: Core, email: str, addr: str | None) -> None:
    waits = [
        await core.limiter.retry_after_s(
            f"login:account:{email}", limit=ACCOUNT_FAILURES_LIMIT, window_s=ACCOUNT_WINDOW_S
        ),
        await core.limiter.retry_after_s(
            f"login:client:{addr}", limit=CLIENT_ATTEMPTS_LIMIT, window_s=CLIENT_WINDOW_S
        ),
    ]
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        raise RateLimited(f"too many login attempts: try again in {wait} s", retry_after_s=wait)


async def _audit_failure(core: Core, email: str, addr: str | None, user: User | None) -> None:
    # Own transaction: the request's transaction rolls back when we raise.
    async with core.sessions() as db, db.begin():
        audit.record(
            db,
            "login.failure",
            actor_user_id=user.id if user else None,
            actor=email,
            client_addr=addr,
            details={"reason": "disabled" if user and not user.is_active else "bad_credentials"},
        )


def set_session_cookies(response: Response, core: Core, csrf_token: str, cookie: str) -> None:
    """The HttpOnly session cookie and the CSRF cookie the page scripts read."""
    secure = core.settings.secure_cookies
    max_age = core.settings.session_ttl_s
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token,
        max_age=max_age,
        httponly=False,
        samesite="lax",
        secure=secure,
        path="/",
    )


@router.post("/login", response_model=LoginOut)
async def login(
    body: LoginIn, request: Request, response: Response, core: CoreDep, db: DbDep
) -> LoginOut:
    """Log in with email and password; sets the session cookie."""
    if "\x00" in body.email:
        raise ValidationFailed("email: must not contain NUL characters", details={"field": "email"})
    email = normalise_email(body.email)
    addr = client_addr(request)
    await _check_login_limits(core, email, addr)
    # Count the attempt as a failure before the password check, so parallel guesses cannot
    # all pass the check above; a correct password clears the count again below.
    await core.limiter.hit(f"login:client:{addr}", window_s=CLIENT_WINDOW_S)
    await core.limiter.hit(f"login:account:{email}", window_s=ACCOUNT_WINDOW_S)
    user = await find_user(db, email)
    # Argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    ok = await asyncio.to_thread(
        verify_password, user.password_hash if user else None, body.password
    )
    if not ok or user is None or not user.is_active:
        await _audit_failure(core, email, addr, user)
        raise Unauthorized("wrong email or password")
    await core.limiter.reset(f"login:account:{email}")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(body.password)
    user.last_login_at = datetime.now(UTC)
    session, cookie = await create_session(
        db,
        user,
        ttl_s=core.settings.session_ttl_s,
        client_addr=addr,
        user_agent=request.headers.get("user-agent"),
    )
    audit.record(db, "login.success", actor_user_id=user.id, actor=user.email, client_addr=addr)
    set_session_cookies(response, core, session.csrf_token, cookie)
    return LoginOut(
        user=UserOut.model_validate(user),
        csrf_token=session.csrf_token,
        expires_at=session.expires_at,
    )


@router.post("/logout", status_code=204)
async def logout(
    request: Request, response: Response, principal: PrincipalDep, db: DbDep
) -> Response:
    """End the current browser session (with a token: no-op besides the audit row)."""
    if principal.session_id is not None:
        await db.execute(delete(DbSession).where(DbSession.id == principal.session_id))
    audit.record(
        db,
        "logout",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
    )
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", response_model=UserOut)
async def me(principal: PrincipalDep, db: DbDep) -> User:
    """The authenticated user."""
    user = await db.get(User, principal.user_id)
    assert user is not None
    return user
