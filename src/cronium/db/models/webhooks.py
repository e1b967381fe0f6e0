"""Signed webhook calls already accepted: the replay memory shared by every node."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from cronium.db.models.base import Base, created_at_column


class WebhookSignature(Base):
    """One accepted signature of a webhook key, kept while its timestamp could still pass.

    The primary key makes acceptance exactly-once: `INSERT … ON CONFLICT DO NOTHING` lets
    one of two identical calls win, on any node. Rows go once `expires_at` is well past.
    """

    __tablename__ = "webhook_signatures"

    webhook_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Lowercase hex HMAC-SHA256 of "<timestamp>.<body>", as the server computed it.
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The signed timestamp plus the freshness window: after this it is refused as stale.
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    created_at: Mapped[datetime] = created_at_column()
