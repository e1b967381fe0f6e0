"""Servers and variables."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from cronium.api.schemas.common import Body, Out
from cronium.api.schemas.events import Name
from cronium.db.models import ServerStatus

HOSTNAME = re.compile(r"^[A-Za-z0-9._:\[\]-]+$")
USERNAME = re.compile(r"^[a-z_A-Z][A-Za-z0-9._-]*\$?$")
VARIABLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MAX_VARIABLE_BYTES = 1024 * 1024


def _fingerprint(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not re.match(r"^SHA256:[A-Za-z0-9+/]{43}=?$", value):
        raise ValueError("must look like SHA256:<43 base64 characters>, as ssh-keygen -lf prints it")
    return value


Fingerprint = Annotated[str | None, Field(max_length=128), AfterValidator(_fingerprint)]


class KeyAuth(Body):
    type: Literal["key"]
    private_key: Annotated[str, Field(min_length=1, max_length=32_768)]
    passphrase: Annotated[str | None, Field(max_length=1024)] = None

    @model_validator(mode="after")
    def _decrypts(self) -> KeyAuth:
        from cronium.domain.servers import check_private_key

        check_private_key(self.private_key, self.passphrase)
        return self


class PasswordAuth(Body):
    type: Literal["password"]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


ServerAuth = Annotated[KeyAuth | PasswordAuth, Field(discriminator="type")]


def _host(value: str) -> str:
    value = value.strip()
    if not value or not HOSTNAME.match(value):
        raise ValueError("must be a hostname or IP address")
    return value


Host = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_host)]


def _username(value: str) -> str:
    if not USERNAME.match(value):
        raise ValueError("must be a valid Unix user name")
    return value


Username = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_username)]


class ServerIn(Body):
    name: Name
    host: Host
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    username: Username
    auth: ServerAuth
    host_key_fingerprint: Fingerprint = Field(
        default=None, description="Pin the host key up front (SHA256:… as ssh-keygen -lf prints it)."
    )
    max_concurrent_jobs: Annotated[int, Field(ge=1, le=256)] = 4


class ServerPatch(Body):
    name: Name | None = None
    host: Host | None = None
    port: Annotated[int | None, Field(ge=1, le=65535)] = None
    username: Username | None = None
    auth: ServerAuth | None = None
    host_key_fingerprint: Fingerprint = None
    max_concurrent_jobs: Annotated[int | None, Field(ge=1, le=256)] = None


class ServerOut(Out):
    id: int
    owner_id: int
    name: str
    host: str
    port: int
    username: str
    auth_type: str
    host_key_fingerprint: str | None
    status: ServerStatus
    last_checked_at: datetime | None
    last_error: str | None
    system_info: dict[str, Any]
    max_concurrent_jobs: int
    created_at: datetime
    updated_at: datetime


def _variable_key(value: str) -> str:
    if not VARIABLE_KEY.match(value):
        raise ValueError("must start with a letter or _ and hold only letters, digits, _ . -")
    return value


VariableKey = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_variable_key)]


def _value_size(value: Any) -> Any:
    import json

    size = len(json.dumps(value).encode())
    if size > MAX_VARIABLE_BYTES:
        raise ValueError(f"value is {size} bytes as JSON; the limit is {MAX_VARIABLE_BYTES}")
    return value


VariableValue = Annotated[Any, AfterValidator(_value_size)]


class VariableIn(Body):
    key: VariableKey
    value: VariableValue = None
    secret: bool = False
    description: Annotated[str, Field(max_length=2000)] = ""


class VariablePatch(Body):
    key: VariableKey | None = None
    value: VariableValue = None
    secret: bool | None = None
    description: Annotated[str | None, Field(max_length=2000)] = None


class VariableOut(Body):
    id: int
    owner_id: int
    key: str
    value: Any = Field(description="null for secret variables: secret values are write-only.")
    secret: bool
    description: str
    created_at: datetime
    updated_at: datetime
