"""acquisitions.strategy: the contract's strategy names ("entropy"), not the protobuf enum names
("STRATEGY_ENTROPY") the rows were stored with before

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The names as of this revision (lesslabels.contract.vocabulary.STRATEGIES then): a migration keeps
# its own copy, so that a later change of the vocabulary does not rewrite what it did.
STRATEGIES = ("entropy", "margin", "least_confidence", "ratio", "random", "clustered_entropy", "clustered_margin")
# The stored name -> the enum name it was stored as; "" was STRATEGY_UNSPECIFIED (no strategy named).
RENAMES = {name: f"STRATEGY_{name.upper()}" for name in STRATEGIES} | {"": "STRATEGY_UNSPECIFIED"}

acquisitions = sa.table("acquisitions", sa.column("strategy", sa.String))


def upgrade() -> None:
    for name, enum_name in RENAMES.items():
        op.execute(acquisitions.update().where(acquisitions.c.strategy == enum_name).values(strategy=name))


def downgrade() -> None:
    for name, enum_name in RENAMES.items():
        op.execute(acquisitions.update().where(acquisitions.c.strategy == name).values(strategy=enum_name))
