"""Users, login and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field

from cronium.api.schemas.common import Body, Out
from cronium.db.models import Role
from cronium.security.passwords import MIN_PASSWORD_LENGTH


def _lower(value: str) -> str:
    return value.strip().lower()


Email = Annotated[EmailStr, AfterValidator(_lower)]
Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)]


class LoginIn(Body):
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class UserOut(Out):
    id: int
    email: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class LoginOut(Body):
    user: UserOut
    csrf_token: str = Field(
        description="Send as X-CSRF-Token on unsafe requests made with the cookie."
    )
    expires_at: datetime


class UserCreate(Body):
    email: Email
    password: Password
    role: Role = Role.user


class UserUpdate(Body):
    email: Email | None = None
    password: Password | None = None
    role: Role | None = None
    is_active: bool | None = None


class TokenCreate(Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    expires_at: datetime | None = Field(default=None, description="Absolute expiry (ISO 8601).")
    expires_in_days: Annotated[int | None, Field(ge=1, le=3650)] = None


class TokenOut(Out):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret token. Shown only once.")


LinkToken = Annotated[str, Field(min_length=1, max_length=200)]


class PasswordResetIn(Body):
    email: Annotated[str, Field(min_length=1, max_length=320)]


class PasswordResetConfirm(Body):
    token: LinkToken
    password: Password


class Accepted(Body):
    message: str


class InvitationCreate(Body):
    email: Email
    role: Role = Role.user


class InvitationOut(Out):
    id: int
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime
    expired: bool = False


class InvitationCreated(InvitationOut):
    email_sent: bool = Field(description="The invitation email went out.")
    email_error: str | None = Field(
        default=None, description="Why the email could not be sent (then share `url` yourself)."
    )
    url: str | None = Field(
        default=None, description="The invitation link, only when it could not be emailed."
    )


class InvitationAccept(Body):
    token: LinkToken
    password: Password
