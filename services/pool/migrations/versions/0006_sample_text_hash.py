"""samples.text_hash: an indexed hash of each text, so the duplicate check of an import does not scan the dataset

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:20:00
"""

from alembic import op
import sqlalchemy as sa

from lesslabels.pool.texthash import text_hash


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_hash", sa.BigInteger(), nullable=True))
    samples = sa.table(
        "samples", sa.column("id", sa.Integer), sa.column("text", sa.Text), sa.column("text_hash", sa.BigInteger)
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(samples.c.id, samples.c.text).where(samples.c.id > last).order_by(samples.c.id).limit(_BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            samples.update().where(samples.c.id == sa.bindparam("sid")).values(text_hash=sa.bindparam("hash")),
            [{"sid": row.id, "hash": text_hash(row.text)} for row in rows],
        )
        last = rows[-1].id
    # The column stays nullable: making it NOT NULL on SQLite rebuilds the table (copy, drop,
    # rename), and dropping samples with foreign keys on cascades to every label and acquisition.
    op.create_index("ix_samples_dataset_text_hash", "samples", ["dataset_id", "text_hash"])


def downgrade() -> None:
    op.drop_index("ix_samples_dataset_text_hash", table_name="samples")
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.drop_column("text_hash")
