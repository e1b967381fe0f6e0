"""Servers, variables, tool credentials and action templates: user-owned resources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cronium.db.models.base import (
    Base,
    ServerAuthType,
    ServerStatus,
    ToolKind,
    created_at_column,
    id_column,
    pg_enum,
    updated_at_column,
)


class Server(Base):
    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_servers_owner_name"),)

    id: Mapped[int] = id_column()
    owner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    port: Mapped[int] = mapped_column(Integer, nullable=False, server_default="22")
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    auth_type: Mapped[ServerAuthType] = mapped_column(
        pg_enum(ServerAuthType, "server_auth_type"), nullable=False
    )
    # Private key (PEM/OpenSSH) or password, encrypted; the passphrase separately.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    passphrase_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    host_key: Mapped[str | None] = mapped_column(Text)
    host_key_fingerprint: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[ServerStatus] = mapped_column(
        pg_enum(ServerStatus, "server_status"), nullable=False, server_default="unknown"
    )
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    system_info: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    max_concurrent_jobs: Mapped[int] = mapped_column(Integer, nullable=False, server_default="4")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class Variable(Base):
    """A user variable. Plain values live in `value`; secret ones only in `value_encrypted`."""

    __tablename__ = "variables"
    __table_args__ = (UniqueConstraint("owner_id", "key", name="uq_variables_owner_key"),)

    id: Mapped[int] = id_column()
    owner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key: Mapped[str] = mapped_column(String(200), nullable=False)
    # none_as_null: Python None is SQL NULL, so a secret leaves nothing (not even a JSON
    # null) in the plain column, and a plain null reads back as None all the same.
    value: Mapped[Any | None] = mapped_column(JSONB(none_as_null=True))
    value_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class ToolCredential(Base):
    __tablename__ = "tool_credentials"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_tool_credentials_owner_name"),)

    id: Mapped[int] = id_column()
    owner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    tool: Mapped[ToolKind] = mapped_column(pg_enum(ToolKind, "tool_kind"), nullable=False)
    config_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class ActionTemplate(Base):
    """A saved tool action (tool, action, templated params), reusable by `template_id`."""

    __tablename__ = "action_templates"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_action_templates_owner_name"),)

    id: Mapped[int] = id_column()
    owner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    tool: Mapped[ToolKind] = mapped_column(pg_enum(ToolKind, "tool_kind"), nullable=False)
    action: Mapped[str] = mapped_column(String(100), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
