"""Servers and variables."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, Field, model_validator

from cronium.api.schemas.common import Body, Out
from cronium.api.schemas.events import Name
from cronium.db.models import ServerStatus

HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
USERNAME = re.compile(r"^[a-z_A-Z][A-Za-z0-9._-]*\$?$")
VARIABLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MAX_VARIABLE_BYTES = 1024 * 1024


# Ids are bigint: anything outside 1..2^63-1 cannot exist and must not reach the driver.
ObjectId = Annotated[int, Path(ge=1, le=2**63 - 1)]
NO_NUL = r"^[^\x00]*$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


ServerName = Annotated[Name, AfterValidator(_no_nul)]
Description = Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)]


def _fingerprint(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not re.match(r"^SHA256:[A-Za-z0-9+/]{43}=?$", value):
        raise ValueError(
            "must look like SHA256:<43 base64 characters>, as ssh-keygen -lf prints it"
        )
    return value


Fingerprint = Annotated[str | None, Field(max_length=128), AfterValidator(_fingerprint)]


class KeyAuth(Body):
    type: Literal["key"]
    private_key: Annotated[str, Field(min_length=1, max_length=32_768)]
    passphrase: Annotated[str | None, Field(max_length=1024)] = None

    @model_validator(mode="after")
    def _decrypts(self) -> KeyAuth:
        from cronium.domain.servers import check_private_key

        # Store the key as ssh expects it: LF line ends (a browser form sends CRLF), no
        # indentation, one trailing newline.
        lines = (line.strip() for line in self.private_key.strip().splitlines())
        self.private_key = "\n".join(lines) + "\n"
        check_private_key(self.private_key, self.passphrase)
        return self


class PasswordAuth(Body):
    type: Literal["password"]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


ServerAuth = Annotated[KeyAuth | PasswordAuth, Field(discriminator="type")]


def _host(value: str) -> str:
    """A DNS name or an IP address (IPv6 optionally in brackets, stored without them).

    Nothing that could pass for an ssh option (leading '-'), a user@ prefix, a :port
    suffix or a path gets through.
    """
    value = value.strip()
    candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    if (
        candidate != value
        or len(value) > 253
        or not all(HOST_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError("must be a hostname or an IP address (no user@, :port or spaces)")
    return value


Host = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_host)]


def _username(value: str) -> str:
    if not USERNAME.match(value):
        raise ValueError("must be a valid Unix user name")
    return value


Username = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_username)]


class ServerIn(Body):
    name: ServerName
    host: Host
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    username: Username
    auth: ServerAuth
    host_key_fingerprint: Fingerprint = Field(
        default=None,
        description="Pin the host key up front (SHA256:… as ssh-keygen -lf prints it).",
    )
    max_concurrent_jobs: Annotated[int, Field(ge=1, le=256)] = 4


class ServerPatch(Body):
    name: ServerName | None = None
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


class ServerCheckError(Out):
    code: str = Field(
        description="host_unreachable, connection_refused, auth_failed, host_key_mismatch"
        " or ssh_error"
    )
    message: str


class ServerCheckOut(Out):
    ok: bool = Field(description="Whether the server answered and the probe ran.")
    status: ServerStatus
    checked_at: datetime
    latency_ms: int | None = Field(
        description="Time to connect (TCP, key exchange, authentication); null if it failed."
    )
    duration_ms: int = Field(description="Time the whole check took.")
    error: ServerCheckError | None
    system_info: dict[str, Any] | None = Field(
        description="What the probe found (OS, kernel, login shell, tools); null if it did"
        " not run, in which case the server keeps the last one found."
    )
    host_key_fingerprint: str | None = Field(description="The pinned host key after the check.")
    server: ServerOut


def _variable_key(value: str) -> str:
    if not VARIABLE_KEY.match(value):
        raise ValueError("must start with a letter or _ and hold only letters, digits, _ . -")
    return value


VariableKey = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_variable_key)]


MAX_VARIABLE_DEPTH = 64


def _json_value(value: Any) -> Any:
    """Any JSON value PostgreSQL's jsonb can hold, up to 1 MiB and 64 levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_VARIABLE_DEPTH:
            raise ValueError(f"value is nested more than {MAX_VARIABLE_DEPTH} levels deep")
        if isinstance(item, str) and "\x00" in item:
            raise ValueError("strings must not contain NUL characters (\\u0000)")
        if isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise ValueError("value must be JSON: NaN and Infinity are not allowed") from None
    size = len(encoded.encode())
    if size > MAX_VARIABLE_BYTES:
        raise ValueError(
            f"value is {size} bytes as JSON; the limit is {MAX_VARIABLE_BYTES} (1 MiB)"
        )
    return value


VariableValue = Annotated[Any, AfterValidator(_json_value)]


class VariableIn(Body):
    key: VariableKey
    value: VariableValue = None
    secret: bool = False
    description: Description = ""


class VariablePatch(Body):
    key: VariableKey | None = None
    value: VariableValue = None
    secret: bool | None = None
    description: Description | None = None


class VariableOut(Body):
    id: int
    owner_id: int
    key: str
    value: Any = Field(description="null for secret variables: secret values are write-only.")
    secret: bool
    description: str
    created_at: datetime
    updated_at: datetime
