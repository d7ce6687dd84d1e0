"""Counts kept, not recounted: samples per (dataset, split, gold label) and labels in force per
(dataset, scope, split, label), in the tables ``sample_counts`` and ``label_counts``.

The writes that change what they count (an import, a label given or changed, a dataset deleted) call
``add_samples`` / ``add_labels`` inside their own transaction, so a count commits or rolls back with
the rows it counts. The readers here then cost a few rows per split and label, whatever the pool's
size. Increments are upserts (``count = count + n``): two transactions bumping one count serialize on
its row instead of losing an update; rows are written in key order so that they do not deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lesslabels.pool.tables import LabelCount, SampleCount


def add_samples(session: Session, dataset_id: int, changes: Mapping[tuple[str, str], int]) -> None:
    """Add ``n`` to the samples of the dataset for each ``(split, gold label or "") -> n``."""
    _bump(
        session,
        SampleCount.__table__,  # type: ignore[arg-type]
        ("dataset_id", "split", "gold_label"),
        {(dataset_id, split, gold): n for (split, gold), n in changes.items()},
    )


def add_labels(session: Session, dataset_id: int, scope: str, changes: Mapping[tuple[str, str], int]) -> None:
    """Add ``n`` (negative for a label taken back) for each ``(split, label) -> n`` in ``scope``."""
    _bump(
        session,
        LabelCount.__table__,  # type: ignore[arg-type]
        ("dataset_id", "scope", "split", "label"),
        {(dataset_id, scope, split, label): n for (split, label), n in changes.items()},
    )


def samples_by_split(session: Session, dataset_id: int) -> dict[str, int]:
    """The dataset's samples per split (splits without samples left out)."""
    rows = session.execute(
        select(SampleCount.split, func.sum(SampleCount.count))
        .where(SampleCount.dataset_id == dataset_id)
        .group_by(SampleCount.split)
    )
    return {split: int(n) for split, n in rows if n}


def samples_by_gold(session: Session, dataset_id: int) -> list[tuple[str, str, int]]:
    """``(split, gold label or "", samples)`` of the dataset, none with zero samples."""
    rows = session.execute(
        select(SampleCount.split, SampleCount.gold_label, SampleCount.count).where(
            SampleCount.dataset_id == dataset_id, SampleCount.count > 0
        )
    )
    return [(split, gold, int(n)) for split, gold, n in rows]


def labels_by_split(session: Session, dataset_id: int, scope: str) -> list[tuple[str, str, int]]:
    """``(split, label, samples)`` in force in ``scope`` over the dataset, none with zero samples."""
    rows = session.execute(
        select(LabelCount.split, LabelCount.label, LabelCount.count).where(
            LabelCount.dataset_id == dataset_id, LabelCount.scope == scope, LabelCount.count > 0
        )
    )
    return [(split, label, int(n)) for split, label, n in rows]


def sample_total(session: Session, dataset_id: int, splits: Iterable[str] = ()) -> int:
    """The dataset's samples, in ``splits`` when given."""
    query = select(func.coalesce(func.sum(SampleCount.count), 0)).where(SampleCount.dataset_id == dataset_id)
    splits = list(splits)
    if splits:
        query = query.where(SampleCount.split.in_(splits))
    return int(session.execute(query).scalar_one())


def labelled_total(session: Session, dataset_id: int, scope: str, splits: Iterable[str] = ()) -> int:
    """The dataset's samples with a label in force in ``scope``, in ``splits`` when given."""
    query = select(func.coalesce(func.sum(LabelCount.count), 0)).where(
        LabelCount.dataset_id == dataset_id, LabelCount.scope == scope
    )
    splits = list(splits)
    if splits:
        query = query.where(LabelCount.split.in_(splits))
    return int(session.execute(query).scalar_one())


def forget_dataset(session: Session, dataset_id: int) -> None:
    """Drop the dataset's counts (it is being deleted with all its rows)."""
    session.execute(SampleCount.__table__.delete().where(SampleCount.dataset_id == dataset_id))  # type: ignore[attr-defined]
    session.execute(LabelCount.__table__.delete().where(LabelCount.dataset_id == dataset_id))  # type: ignore[attr-defined]


def _bump(session: Session, table: Table, key: tuple[str, ...], changes: Mapping[tuple, int]) -> None:
    """``count += n`` for each key of ``changes`` (a row created at ``n`` when there is none)."""
    rows = [{**dict(zip(key, k, strict=True)), "count": n} for k, n in sorted(changes.items()) if n]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=list(key), set_={"count": table.c.count + statement.excluded.count}
            ),
            rows,
        )
        return
    # Another database: update, else insert (a concurrent insert of the same key fails the
    # transaction with an IntegrityError, which the store's writer retries).
    for row in rows:
        match = [table.c[name] == row[name] for name in key]
        done = session.execute(update(table).where(*match).values(count=table.c.count + row["count"]))
        if not done.rowcount:  # type: ignore[attr-defined]
            session.execute(table.insert().values(**row))
