"""Audit log rows for security-relevant actions, written in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cronium.db.models import AuditLog


def record(
    db: AsyncSession,
    action: str,
    *,
    actor_user_id: int | None,
    actor: str | None,
    client_addr: str | None,
    target_type: str | None = None,
    target_id: int | str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    db.add(
        AuditLog(
            action=action,
            actor_user_id=actor_user_id,
            actor=actor,
            client_addr=client_addr,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            details=details or {},
        )
    )
