"""Public account routes reached from emailed links: password reset and accepting an
invitation. No login; rate limited like the login."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, BackgroundTasks, Request, Response

from cronium.api.deps import CoreDep, DbDep, client_addr
from cronium.api.routers.auth import set_session_cookies
from cronium.api.routers.settings import request_base_url
from cronium.api.schemas.accounts import (
    Accepted,
    InvitationAccept,
    LoginOut,
    PasswordResetConfirm,
    PasswordResetIn,
    UserOut,
)
from cronium.core import Core
from cronium.domain import app_settings, audit, invitations, password_reset
from cronium.domain.accounts import create_session, normalise_email
from cronium.domain.app_settings import SmtpSettings
from cronium.domain.mail import MailNotConfigured, send_mail
from cronium.errors import CroniumError, RateLimited, ValidationFailed

router = APIRouter(prefix="/auth", tags=["auth"])
log = logging.getLogger("cronium.accounts")

# Reset requests per address and per client; link uses (reset, accept) per client.
ADDRESS_LIMIT, ADDRESS_WINDOW_S = 5, 60 * 60
CLIENT_LIMIT, CLIENT_WINDOW_S = 20, 15 * 60
LINK_LIMIT, LINK_WINDOW_S = 30, 5 * 60
RESET_ANSWER = "If an account with this address exists, a link to set a new password is on its way."


async def _limit(core: Core, *keys: tuple[str, int, int]) -> None:
    """Refuse when any key is over its limit, else count this request against every key."""
    waits = [
        await core.limiter.retry_after_s(key, limit=limit, window_s=window)
        for key, limit, window in keys
    ]
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        raise RateLimited(f"too many requests: try again in {wait} s", retry_after_s=wait)
    for key, _, window in keys:
        await core.limiter.hit(key, window_s=window)


async def _send_reset(smtp: SmtpSettings, to: str, url: str, minutes: int) -> None:
    """After the answer went out, so that its timing does not tell whether the account exists."""
    try:
        await send_mail(smtp, to, *password_reset.message(url, minutes))
    except CroniumError as exc:
        log.warning("password reset email to %s failed: %s", to, exc.message)


@router.post("/password-reset", response_model=Accepted, status_code=202)
async def request_password_reset(
    body: PasswordResetIn, request: Request, core: CoreDep, background: BackgroundTasks
) -> Accepted:
    """Email a single-use link to set a new password. The answer is the same whether or not
    the account exists."""
    if "\x00" in body.email:
        raise ValidationFailed("email: must not contain NUL characters", details={"field": "email"})
    email = normalise_email(body.email)
    addr = client_addr(request)
    await _limit(
        core,
        (f"reset:address:{email}", ADDRESS_LIMIT, ADDRESS_WINDOW_S),
        (f"reset:client:{addr}", CLIENT_LIMIT, CLIENT_WINDOW_S),
    )
    # Its own transaction, committed before the email can arrive anywhere.
    async with core.sessions() as db, db.begin():
        smtp, accounts = await app_settings.load(db, core.cipher)
        if not smtp.configured:
            raise MailNotConfigured(
                "this Cronium cannot send email yet: ask an admin to reset your password"
            )
        base_url = accounts.base_url or request_base_url(request)
        found = await password_reset.start(db, email, accounts, base_url, addr)
    if found is not None:
        background.add_task(_send_reset, smtp, found[0], found[1], accounts.reset_ttl_minutes)
    return Accepted(message=RESET_ANSWER)


@router.post("/password-reset/confirm", status_code=204)
async def confirm_password_reset(
    body: PasswordResetConfirm, request: Request, core: CoreDep, db: DbDep
) -> Response:
    """Set a new password with the emailed token (once); every session of the account ends."""
    addr = client_addr(request)
    await _limit(core, (f"link:client:{addr}", LINK_LIMIT, LINK_WINDOW_S))
    await password_reset.finish(db, body.token, body.password, addr)
    return Response(status_code=204)


@router.post("/invitations/accept", response_model=LoginOut, status_code=201)
async def accept_invitation(
    body: InvitationAccept, request: Request, response: Response, core: CoreDep, db: DbDep
) -> LoginOut:
    """Create the invited account with this password (once) and sign it in."""
    addr = client_addr(request)
    await _limit(core, (f"link:client:{addr}", LINK_LIMIT, LINK_WINDOW_S))
    user = await invitations.accept(db, body.token, body.password)
    user.last_login_at = datetime.now(UTC)
    session, cookie = await create_session(
        db,
        user,
        ttl_s=core.settings.session_ttl_s,
        client_addr=addr,
        user_agent=request.headers.get("user-agent"),
    )
    audit.record(
        db,
        "invitation.accept",
        actor_user_id=user.id,
        actor=user.email,
        client_addr=addr,
        target_type="user",
        target_id=user.id,
        details={"role": user.role.value},
    )
    await db.refresh(user)
    set_session_cookies(response, core, session.csrf_token, cookie)
    return LoginOut(
        user=UserOut.model_validate(user),
        csrf_token=session.csrf_token,
        expires_at=session.expires_at,
    )
