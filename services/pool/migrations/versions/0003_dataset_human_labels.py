"""Human labels belong to the dataset: copy each sample's latest human label given in a run into the
dataset scope (as a new event with its annotator and original time), where the dataset has none yet.

Nothing is removed or changed: run-scope labels and the whole event history stay as they were.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 05:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DATASET_SCOPE = "dataset"


def upgrade() -> None:
    bind = op.get_bind()
    events = sa.table(
        "label_events",
        sa.column("id", sa.Integer),
        sa.column("sample_id", sa.Integer),
        sa.column("scope", sa.String),
        sa.column("label", sa.String),
        sa.column("source", sa.String),
        sa.column("annotator", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("idempotency_key", sa.String),
    )
    current = sa.table(
        "current_labels",
        sa.column("sample_id", sa.Integer),
        sa.column("scope", sa.String),
        sa.column("label", sa.String),
        sa.column("event_id", sa.Integer),
    )
    in_dataset = set(bind.execute(sa.select(current.c.sample_id).where(current.c.scope == DATASET_SCOPE)).scalars())
    latest: dict[int, sa.Row] = {}
    rows = bind.execute(
        sa.select(events.c.id, events.c.sample_id, events.c.label, events.c.annotator, events.c.created_at)
        .select_from(current.join(events, events.c.id == current.c.event_id))
        .where(current.c.scope != DATASET_SCOPE, events.c.source == "human")
        .order_by(events.c.id)
    ).all()
    for row in rows:
        if row.sample_id not in in_dataset:
            latest[row.sample_id] = row  # ordered by id: the last one wins
    for sample_id, row in latest.items():
        event_id = bind.execute(
            sa.insert(events)
            .values(
                sample_id=sample_id,
                scope=DATASET_SCOPE,
                label=row.label,
                source="human",
                annotator=row.annotator,
                created_at=row.created_at,
                idempotency_key=f"migration-0003:{row.id}",
            )
            .returning(events.c.id)
        ).scalar_one()
        bind.execute(
            sa.insert(current).values(sample_id=sample_id, scope=DATASET_SCOPE, label=row.label, event_id=event_id)
        )


def downgrade() -> None:
    # The copied labels are ordinary dataset labels; removing them could lose later relabels.
    pass
