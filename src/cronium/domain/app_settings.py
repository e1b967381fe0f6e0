"""Instance settings edited by admins: outgoing mail (SMTP) and the links Cronium emails.

Stored in the `settings` table, one row per group; the SMTP password lives only in the
row's `secret_encrypted` (AES-GCM under the instance key) and never leaves the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.db.models import Setting
from cronium.security.crypto import Cipher

SMTP_KEY = "smtp"
ACCOUNTS_KEY = "accounts"
DEFAULT_INVITATION_TTL_HOURS = 7 * 24
DEFAULT_RESET_TTL_MINUTES = 60
# Binds the ciphertext to its row: a blob copied into another setting does not decrypt.
_CONTEXT = b"setting:smtp"

Security = Literal["none", "starttls", "tls"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None = None
    port: int | None = None
    security: Security = "starttls"
    username: str | None = None
    password: str | None = None
    from_address: str | None = None
    verify_tls: bool = True

    @property
    def configured(self) -> bool:
        """Email can be sent: a server and a sender address are set."""
        return bool(self.host and self.from_address)


@dataclass(frozen=True)
class AccountSettings:
    base_url: str | None = None
    invitation_ttl_hours: int = DEFAULT_INVITATION_TTL_HOURS
    reset_ttl_minutes: int = DEFAULT_RESET_TTL_MINUTES


async def _rows(db: AsyncSession) -> dict[str, Setting]:
    rows = await db.scalars(select(Setting).where(Setting.key.in_((SMTP_KEY, ACCOUNTS_KEY))))
    return {row.key: row for row in rows}


async def load(db: AsyncSession, cipher: Cipher) -> tuple[SmtpSettings, AccountSettings]:
    """Both groups, with the SMTP password decrypted (for sending mail, never for output)."""
    rows = await _rows(db)
    smtp_row, accounts_row = rows.get(SMTP_KEY), rows.get(ACCOUNTS_KEY)
    smtp = SmtpSettings()
    if smtp_row is not None:
        fields = {k: v for k, v in smtp_row.value.items() if k in SmtpSettings.__annotations__}
        fields.pop("password", None)
        password = None
        if smtp_row.secret_encrypted:
            secret = cipher.decrypt(smtp_row.secret_encrypted, context=_CONTEXT)
            password = secret.decode() or None
        smtp = SmtpSettings(**fields, password=password)
    accounts = AccountSettings()
    if accounts_row is not None:
        known = AccountSettings.__annotations__
        accounts = AccountSettings(**{k: v for k, v in accounts_row.value.items() if k in known})
    return smtp, accounts


async def password_is_set(db: AsyncSession) -> bool:
    row = await db.get(Setting, SMTP_KEY)
    return row is not None and row.secret_encrypted is not None


async def save(
    db: AsyncSession,
    cipher: Cipher,
    smtp: dict[str, Any],
    accounts: dict[str, Any],
    *,
    password: str | None,
    clear_password: bool,
) -> None:
    """Replace both groups. `password` None keeps the stored one unless `clear_password`."""
    smtp_values: dict[str, Any] = {"key": SMTP_KEY, "value": smtp}
    if clear_password:
        smtp_values["secret_encrypted"] = None
    elif password:
        smtp_values["secret_encrypted"] = cipher.encrypt(password.encode(), context=_CONTEXT)
    for values in (smtp_values, {"key": ACCOUNTS_KEY, "value": accounts}):
        changed = {k: v for k, v in values.items() if k != "key"}
        stmt = insert(Setting).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Setting.key], set_={**changed, "updated_at": stmt.excluded.updated_at}
        )
        await db.execute(stmt)
