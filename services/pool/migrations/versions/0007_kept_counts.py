"""sample_counts and label_counts: counts kept by the writes, filled here from the rows already stored

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sample_counts = op.create_table(
        "sample_counts",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("gold_label", sa.String(length=128), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "split", "gold_label"),
    )
    label_counts = op.create_table(
        "label_counts",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "scope", "split", "label"),
    )
    samples = sa.table(
        "samples",
        sa.column("id", sa.Integer),
        sa.column("dataset_id", sa.Integer),
        sa.column("split", sa.String),
        sa.column("gold_label", sa.String),
    )
    current = sa.table(
        "current_labels",
        sa.column("sample_id", sa.Integer),
        sa.column("scope", sa.String),
        sa.column("label", sa.String),
    )
    gold = sa.func.coalesce(samples.c.gold_label, "")
    op.execute(
        sample_counts.insert().from_select(
            ["dataset_id", "split", "gold_label", "count"],
            sa.select(samples.c.dataset_id, samples.c.split, gold, sa.func.count()).group_by(
                samples.c.dataset_id, samples.c.split, gold
            ),
        )
    )
    op.execute(
        label_counts.insert().from_select(
            ["dataset_id", "scope", "split", "label", "count"],
            sa.select(samples.c.dataset_id, current.c.scope, samples.c.split, current.c.label, sa.func.count())
            .select_from(current)
            .join(samples, samples.c.id == current.c.sample_id)
            .group_by(samples.c.dataset_id, current.c.scope, samples.c.split, current.c.label),
        )
    )


def downgrade() -> None:
    op.drop_table("label_counts")
    op.drop_table("sample_counts")
