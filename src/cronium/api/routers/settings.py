"""Instance settings (admins only): outgoing mail and the links Cronium emails."""

from __future__ import annotations

from fastapi import APIRouter, Request

from cronium.api.deps import AdminDep, CoreDep, DbDep, client_addr
from cronium.api.schemas.settings import SettingsIn, SettingsOut, SmtpOut, TestEmailOut
from cronium.db.models import Setting
from cronium.domain import app_settings, audit
from cronium.domain.mail import send_mail
from cronium.errors import CroniumError, ValidationFailed

router = APIRouter(prefix="/settings", tags=["settings"])


def request_base_url(request: Request) -> str:
    """Where this request says Cronium lives: the links' address while none is set."""
    return str(request.base_url).rstrip("/")


async def _out(request: Request, core: CoreDep, db: DbDep) -> SettingsOut:
    smtp, accounts = await app_settings.load(db, core.cipher)
    row = await db.get(Setting, app_settings.SMTP_KEY)
    return SettingsOut(
        smtp=SmtpOut(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            username=smtp.username,
            password_set=smtp.password is not None,
            from_address=smtp.from_address,
            verify_tls=smtp.verify_tls,
        ),
        base_url=accounts.base_url,
        base_url_default=request_base_url(request),
        invitation_ttl_hours=accounts.invitation_ttl_hours,
        reset_ttl_minutes=accounts.reset_ttl_minutes,
        email_configured=smtp.configured,
        updated_at=row.updated_at if row is not None else None,
    )


@router.get("", response_model=SettingsOut)
async def get_settings(
    request: Request, principal: AdminDep, core: CoreDep, db: DbDep
) -> SettingsOut:
    """The settings; the SMTP password is never returned (`password_set` says if one is stored)."""
    return await _out(request, core, db)


@router.put("", response_model=SettingsOut)
async def put_settings(
    body: SettingsIn, request: Request, principal: AdminDep, core: CoreDep, db: DbDep
) -> SettingsOut:
    """Replace the settings. Omit `smtp.password` to keep the stored one."""
    smtp = body.smtp
    if smtp.host and not smtp.from_address:
        raise ValidationFailed(
            "smtp.from_address: needed when an SMTP server is set",
            details={"field": "smtp.from_address"},
        )
    keeps_password = not smtp.clear_password and (
        smtp.password or await app_settings.password_is_set(db)
    )
    if keeps_password and not smtp.username:
        raise ValidationFailed(
            "smtp.username: needed with a password (or remove the password)",
            details={"field": "smtp.username"},
        )
    values = smtp.model_dump(exclude={"password", "clear_password"})
    accounts = body.model_dump(exclude={"smtp"})
    await app_settings.save(
        db,
        core.cipher,
        values,
        accounts,
        password=smtp.password,
        clear_password=smtp.clear_password,
    )
    audit.record(
        db,
        "settings.change",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
        target_type="settings",
        details={
            "smtp_host": smtp.host,
            "password": "cleared" if smtp.clear_password else ("set" if smtp.password else "kept"),
        },
    )
    await db.flush()
    db.expire_all()
    return await _out(request, core, db)


@router.post("/test-email", response_model=TestEmailOut)
async def test_email(
    request: Request, principal: AdminDep, core: CoreDep, db: DbDep
) -> TestEmailOut:
    """Send a message to your own address with the saved settings; `error` says what failed."""
    smtp, _ = await app_settings.load(db, core.cipher)
    try:
        await send_mail(
            smtp,
            principal.email,
            "Cronium test message",
            "Cronium can send email with these settings.\n",
            "<p>Cronium can send email with these settings.</p>",
        )
    except CroniumError as exc:
        return TestEmailOut(ok=False, to=principal.email, error=exc.message)
    audit.record(
        db,
        "settings.test_email",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
        target_type="settings",
    )
    return TestEmailOut(ok=True, to=principal.email)
