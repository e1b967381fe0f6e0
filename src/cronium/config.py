"""Settings from the environment, with exactly the names of the design contract.

Built once by the app factory or the CLI (never at import), validated eagerly so a bad
value stops the process with one clear line instead of a traceback later.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cronium.errors import ConfigError


class ExecutorChoice(StrEnum):
    auto = "auto"
    container = "container"
    local = "local"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def _default_data_dir() -> Path:
    # As root, the embedded PostgreSQL runs as an unprivileged user that cannot enter
    # /root (mode 0700): use the system location instead.
    if os.geteuid() == 0 and not os.environ.get("XDG_DATA_HOME"):
        return Path("/var/lib/cronium")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cronium"


class Settings(BaseSettings):
    """Every setting Cronium reads. Names are part of the public contract."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    data_dir: Path = Field(default_factory=_default_data_dir, validation_alias="CRONIUM_DATA_DIR")
    host: str = Field(default="127.0.0.1", validation_alias="CRONIUM_HOST")
    port: int = Field(default=8080, validation_alias="CRONIUM_PORT")
    secret_key: str | None = Field(
        default=None, validation_alias=AliasChoices("CRONIUM_SECRET_KEY")
    )
    encryption_key: str | None = Field(default=None, validation_alias="CRONIUM_ENCRYPTION_KEY")
    valkey_url: str | None = Field(default=None, validation_alias="VALKEY_URL")
    executor: ExecutorChoice = Field(
        default=ExecutorChoice.auto, validation_alias="CRONIUM_EXECUTOR"
    )
    docker_host: str | None = Field(default=None, validation_alias="DOCKER_HOST")
    runtime_socket: Path | None = Field(default=None, validation_alias="CRONIUM_RUNTIME_SOCKET")
    # Cronium itself in a container: the Docker volume holding the runtime socket's directory,
    # mounted into job containers by name (a path inside this container means nothing to the
    # engine). Unset: the socket file alone is bind-mounted from the host (never its directory).
    runtime_volume: str | None = Field(default=None, validation_alias="CRONIUM_RUNTIME_VOLUME")
    admin_email: str | None = Field(default=None, validation_alias="CRONIUM_ADMIN_EMAIL")
    admin_password: str | None = Field(default=None, validation_alias="CRONIUM_ADMIN_PASSWORD")
    log_level: LogLevel = Field(default=LogLevel.info, validation_alias="CRONIUM_LOG_LEVEL")
    worker_concurrency: int = Field(default=8, validation_alias="CRONIUM_WORKER_CONCURRENCY")
    kill_grace_s: float = Field(
        default=5.0, ge=0, le=600, validation_alias="CRONIUM_KILL_GRACE_SECONDS"
    )
    lease_s: float = Field(default=10.0, ge=2, le=600, validation_alias="CRONIUM_LEASE_SECONDS")
    poll_interval_s: float = Field(
        default=5.0, gt=0, le=300, validation_alias="CRONIUM_POLL_INTERVAL_SECONDS"
    )
    max_job_output_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, validation_alias="CRONIUM_MAX_JOB_OUTPUT_BYTES"
    )
    misfire_grace_s: float = Field(
        default=2.0, ge=0, le=3600, validation_alias="CRONIUM_MISFIRE_GRACE_SECONDS"
    )
    # Global retention; an event's retention_days / retention_count override these.
    log_retention_days: int = Field(default=30, ge=1, validation_alias="CRONIUM_LOG_RETENTION_DAYS")
    execution_retention_count: int = Field(
        default=1000, ge=1, validation_alias="CRONIUM_EXECUTION_RETENTION_COUNT"
    )
    runtime_max_output_bytes: int = Field(
        default=1024 * 1024, ge=1024, validation_alias="CRONIUM_RUNTIME_MAX_OUTPUT_BYTES"
    )
    runtime_rate_limit_per_s: int = Field(
        default=2000, ge=1, validation_alias="CRONIUM_RUNTIME_RATE_LIMIT"
    )
    session_ttl_s: int = Field(
        default=7 * 24 * 3600, validation_alias="CRONIUM_SESSION_TTL_SECONDS"
    )
    secure_cookies: bool = Field(default=False, validation_alias="CRONIUM_SECURE_COOKIES")
    db_connect_timeout_s: float = Field(
        default=10.0, validation_alias="CRONIUM_DB_CONNECT_TIMEOUT_SECONDS"
    )
    # Container executor (executors/container.py). cronium/* images are built locally by
    # scripts/build-images and never pulled; other images are pulled when missing.
    image_python: str = Field(
        default="python:3.12-slim", min_length=1, validation_alias="CRONIUM_IMAGE_PYTHON"
    )
    image_node: str = Field(
        default="node:22-slim", min_length=1, validation_alias="CRONIUM_IMAGE_NODE"
    )
    image_bash: str = Field(
        default="cronium/bash:latest", min_length=1, validation_alias="CRONIUM_IMAGE_BASH"
    )
    container_runtime: str | None = Field(
        default=None, validation_alias="CRONIUM_CONTAINER_RUNTIME"
    )
    container_cpu: float = Field(
        default=1.0, gt=0, le=1024, validation_alias="CRONIUM_CONTAINER_CPU"
    )
    container_memory_mb: int = Field(
        default=512, ge=6, validation_alias="CRONIUM_CONTAINER_MEMORY_MB"
    )
    container_pids: int = Field(default=256, ge=8, validation_alias="CRONIUM_CONTAINER_PIDS")
    image_pull_timeout_s: float = Field(
        default=300.0, gt=0, le=3600, validation_alias="CRONIUM_IMAGE_PULL_TIMEOUT_SECONDS"
    )
    webhook_rate_limit_per_min: int = Field(
        default=60, ge=1, validation_alias="CRONIUM_WEBHOOK_RATE_LIMIT"
    )
    webhook_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, validation_alias="CRONIUM_WEBHOOK_MAX_BODY_BYTES"
    )
    # Signed webhooks: how far X-Cronium-Timestamp may be from this node's clock, either way.
    webhook_tolerance_s: int = Field(
        default=300, ge=1, le=86400, validation_alias="CRONIUM_WEBHOOK_TOLERANCE_SECONDS"
    )
    # SSH executor (executors/ssh.py) and server health checks.
    ssh_connect_timeout_s: float = Field(
        default=10.0, gt=0, le=300, validation_alias="CRONIUM_SSH_CONNECT_TIMEOUT_SECONDS"
    )
    ssh_command_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, validation_alias="CRONIUM_SSH_COMMAND_TIMEOUT_SECONDS"
    )
    ssh_keepalive_s: float = Field(
        default=15.0, gt=0, le=600, validation_alias="CRONIUM_SSH_KEEPALIVE_SECONDS"
    )
    ssh_idle_s: float = Field(default=300.0, gt=0, validation_alias="CRONIUM_SSH_IDLE_SECONDS")
    server_check_interval_s: float = Field(
        default=300.0, ge=0, validation_alias="CRONIUM_SERVER_CHECK_INTERVAL_SECONDS"
    )

    @field_validator("port")
    @classmethod
    def _port_in_range(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"must be between 1 and 65535, got {value}")
        return value

    @field_validator("worker_concurrency")
    @classmethod
    def _positive_concurrency(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "is not a URL of the form postgresql://user:pass@host:5432/db"
            ) from None
        if url.get_backend_name() not in ("postgresql", "postgres"):
            raise ValueError(f"must be a postgresql:// URL, got scheme {url.drivername!r}")
        if not url.database:
            raise ValueError("names no database (expected postgresql://user@host:5432/dbname)")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("must be at least 32 characters long")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _valid_encryption_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        decode_encryption_key(value)
        return value

    @field_validator("runtime_volume")
    @classmethod
    def _valid_volume_name(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]+", value):
            raise ValueError(
                f"must be a Docker volume name (letters, digits, _ . -), got {value!r}"
            )
        return value

    @field_validator("admin_email")
    @classmethod
    def _normalise_admin_email(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else None

    @property
    def runtime_socket_path(self) -> Path:
        return self.runtime_socket or (self.data_dir / "run" / "runtime.sock")


def decode_encryption_key(value: str) -> bytes:
    """Decode a base64 AES-256 key; raise ValueError with a reason a user understands."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be 32 random bytes encoded in base64") from None
    if len(raw) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(raw)}")
    return raw


_FILE_VARIANTS = (
    "DATABASE_URL",
    "CRONIUM_SECRET_KEY",
    "CRONIUM_ENCRYPTION_KEY",
    "CRONIUM_ADMIN_PASSWORD",
    "VALKEY_URL",
)


def _file_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """Support `NAME_FILE` for secrets (Docker secrets): the file wins if NAME is unset."""
    values: dict[str, Any] = {}
    for name in _FILE_VARIANTS:
        path = environ.get(f"{name}_FILE")
        if path and not environ.get(name):
            try:
                values[name] = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from exc
    return values


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError with one readable line."""
    try:
        file_values = _file_overrides(dict(os.environ))
        return Settings(**file_values, **overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err["loc"][0] if err["loc"] else "settings"
        name = _env_name(str(loc))
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from None


def _env_name(field_or_alias: str) -> str:
    if field_or_alias.isupper():
        return field_or_alias
    field = Settings.model_fields.get(field_or_alias)
    alias = field.validation_alias if field else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field_or_alias.upper()
