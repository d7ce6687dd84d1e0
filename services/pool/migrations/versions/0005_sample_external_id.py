"""samples.external_id: the user's own id of a text (an import's id column), kept and exported

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 06:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=256), nullable=True))
        batch_op.create_index("ix_samples_dataset_external_id", ["dataset_id", "external_id"])


def downgrade() -> None:
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.drop_index("ix_samples_dataset_external_id")
        batch_op.drop_column("external_id")
