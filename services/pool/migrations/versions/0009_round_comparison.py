"""rounds.comparison_json: the round model's paired comparison with the model its run kept before it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rounds recorded before carry no comparison ("{}"): the kept-model rule falls back to their
    # validation accuracies (lesslabels.common.best).
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comparison_json", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_column("comparison_json")
