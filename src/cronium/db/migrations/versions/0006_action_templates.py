"""tools: saved action templates per user

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "action_templates",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "tool",
            postgresql.ENUM(
                "slack", "discord", "teams", "email", "webhook", name="tool_kind", create_type=False
            ),
            nullable=False,
        ),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column(
            "params", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_action_templates_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_templates")),
        sa.UniqueConstraint("owner_id", "name", name="uq_action_templates_owner_name"),
    )
    op.create_index(
        op.f("ix_action_templates_owner_id"), "action_templates", ["owner_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_action_templates_owner_id"), table_name="action_templates")
    op.drop_table("action_templates")
