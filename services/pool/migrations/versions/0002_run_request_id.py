"""runs.request_id: the StartRun idempotency key, kept across coordinator restarts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 01:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_request_id"), ["request_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_request_id"))
        batch_op.drop_column("request_id")
