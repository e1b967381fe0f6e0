"""webhooks: accepted signatures, so a signed call cannot be replayed

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_signatures",
        sa.Column("webhook_key", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("webhook_key", "digest", name=op.f("pk_webhook_signatures")),
    )
    op.create_index(op.f("ix_webhook_signatures_expires_at"), "webhook_signatures", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_signatures_expires_at"), table_name="webhook_signatures")
    op.drop_table("webhook_signatures")
