"""Instance settings: outgoing mail and the links Cronium emails."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from cronium.api.schemas.accounts import Email
from cronium.api.schemas.common import Body
from cronium.domain.app_settings import (
    DEFAULT_INVITATION_TTL_HOURS,
    DEFAULT_RESET_TTL_MINUTES,
    Security,
)


def _base_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// address, e.g. https://cron.example.com")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("must be a plain address without user, query or fragment")
    return value.rstrip("/")


def _blank_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


# Optional texts: the length limit sits on the str (a limit on the union refuses None);
# blank means unset.
Host = Annotated[Annotated[str, Field(max_length=255)] | None, AfterValidator(_blank_none)]
Login = Annotated[Annotated[str, Field(max_length=320)] | None, AfterValidator(_blank_none)]
Secret = Annotated[str, Field(max_length=1000)] | None
BaseUrl = Annotated[Annotated[str, Field(max_length=500)] | None, AfterValidator(_base_url)]


class SmtpIn(Body):
    host: Host = None
    port: Annotated[int | None, Field(ge=1, le=65535)] = None
    security: Security = "starttls"
    username: Login = None
    password: Secret = Field(
        default=None, description="A new password; omit (or null) to keep the stored one."
    )
    clear_password: bool = Field(default=False, description="Remove the stored password.")
    from_address: Email | None = Field(default=None, description="Sender of Cronium's mail.")
    verify_tls: bool = True


class SettingsIn(Body):
    smtp: SmtpIn = Field(default_factory=SmtpIn)
    base_url: BaseUrl = Field(
        default=None,
        description="Public address of Cronium used in emailed links (default: the request's).",
    )
    invitation_ttl_hours: Annotated[int, Field(ge=1, le=720)] = DEFAULT_INVITATION_TTL_HOURS
    reset_ttl_minutes: Annotated[int, Field(ge=5, le=1440)] = DEFAULT_RESET_TTL_MINUTES


class SmtpOut(Body):
    host: str | None
    port: int | None
    security: Security
    username: str | None
    password_set: bool = Field(description="A password is stored (it is never returned).")
    from_address: str | None
    verify_tls: bool


class SettingsOut(Body):
    smtp: SmtpOut
    base_url: str | None
    base_url_default: str = Field(description="The address links use while base_url is unset.")
    invitation_ttl_hours: int
    reset_ttl_minutes: int
    email_configured: bool
    updated_at: datetime | None = None


class TestEmailOut(Body):
    ok: bool
    to: str
    error: str | None = None
