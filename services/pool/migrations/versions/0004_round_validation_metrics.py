"""rounds.validation_metrics_json: the round model's validation metrics (the run keeps its best round)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 06:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rounds recorded before carry no validation metrics ("{}"): such a run keeps its latest round.
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("validation_metrics_json", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_column("validation_metrics_json")
