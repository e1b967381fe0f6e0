"""runtime: execution tokens and job mode

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 02:43:57.475389
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("runtime_token_hash", sa.String(length=64), nullable=True))
    op.add_column("jobs", sa.Column("mode", sa.String(length=16), nullable=True))
    op.create_unique_constraint(op.f("uq_jobs_runtime_token_hash"), "jobs", ["runtime_token_hash"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_jobs_runtime_token_hash"), "jobs", type_="unique")
    op.drop_column("jobs", "mode")
    op.drop_column("jobs", "runtime_token_hash")
