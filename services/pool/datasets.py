"""Datasets: create, read, list, declare the label set, delete (with everything that belongs to them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from sqlalchemy import delete as sa_delete
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lesslabels.common import errors
from lesslabels.contract.vocabulary import ACTIVE_RUN_STATES, SPLITS
from lesslabels.pool import counts
from lesslabels.pool.base import NAME_RE, StorePart, find_dataset
from lesslabels.pool.labelset import validate_label_set
from lesslabels.pool.tables import (
    Acquisition,
    CurrentLabel,
    Dataset,
    ImportRecord,
    LabelEvent,
    Round,
    Run,
    Sample,
    run_scope,
)
from lesslabels.pool.records import DatasetInfo

log = logging.getLogger(__name__)


class DatasetsPart(StorePart):
    """The dataset operations of ``PoolStore``."""

    def create_dataset(self, name: str, description: str = "", labels: Sequence[str] = ()) -> DatasetInfo:
        if not NAME_RE.match(name or ""):
            raise errors.InvalidArgument(
                f"invalid dataset name {errors.quote(name)}: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        clean = validate_label_set(labels)

        def create(session: Session):
            if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
                raise errors.AlreadyExists(f"dataset {errors.quote(name)} already exists")
            session.add(
                Dataset(name=name, description=description, labels_json=json.dumps(clean), labels_fixed=bool(clean))
            )

        try:
            self._writing(create)
        except IntegrityError:
            raise errors.AlreadyExists(f"dataset {errors.quote(name)} already exists") from None
        return self.get_dataset(name)

    def get_dataset(self, name: str) -> DatasetInfo:
        with self._reading() as session:
            return self._dataset_info(session, find_dataset(session, name))

    def list_datasets(self) -> list[DatasetInfo]:
        with self._reading() as session:
            return [self._dataset_info(session, d) for d in session.scalars(select(Dataset).order_by(Dataset.name))]

    def _dataset_info(self, session: Session, dataset: Dataset) -> DatasetInfo:
        per_split = dict.fromkeys(SPLITS, 0) | counts.samples_by_split(session, dataset.id)
        labelled = counts.labelled_total(session, dataset.id, run_scope(0))
        return DatasetInfo(
            dataset.name, dataset.description, json.loads(dataset.labels_json), per_split, labelled, dataset.created_at
        )

    def set_labels(self, name: str, labels: Sequence[str]) -> DatasetInfo:
        """Declare the dataset's label set (an explicit change). A label in use may not be dropped."""
        clean = validate_label_set(labels)
        if not clean:
            raise errors.InvalidArgument("the label set must not be empty")

        def change(session: Session) -> None:
            dataset = find_dataset(session, name)
            sample_ids = select(Sample.id).where(Sample.dataset_id == dataset.id)
            in_use = set(
                session.scalars(select(CurrentLabel.label).where(CurrentLabel.sample_id.in_(sample_ids)).distinct())
            )
            in_use |= {
                g
                for g in session.scalars(select(Sample.gold_label).where(Sample.dataset_id == dataset.id).distinct())
                if g
            }
            dropped = sorted(in_use - set(clean))
            if dropped:
                raise errors.FailedPrecondition(
                    f"labels {dropped} are in use in dataset {errors.quote(name)} (gold or given labels); keep them in the label set"
                )
            dataset.labels_json = json.dumps(clean)
            dataset.labels_fixed = True

        self._writing(change)
        log.info("event=label_set_changed dataset=%s labels=%d", name, len(clean))
        return self.get_dataset(name)

    def delete_dataset(self, name: str) -> int:
        """Delete a dataset with its samples, labels, runs and acquisitions. Returns the samples removed.

        Every statement is restricted to this dataset's ids, so no other dataset's rows are touched.
        """

        def delete_rows(session: Session) -> int:
            dataset = find_dataset(session, name)
            active = session.scalars(
                select(Run.id).where(Run.dataset_id == dataset.id, Run.state.in_(ACTIVE_RUN_STATES))
            ).all()
            if active:
                raise errors.FailedPrecondition(
                    f"dataset {errors.quote(name)} has active runs {list(active)}: cancel them before deleting the dataset"
                )
            samples = select(Sample.id).where(Sample.dataset_id == dataset.id).scalar_subquery()
            runs = select(Run.id).where(Run.dataset_id == dataset.id).scalar_subquery()
            count = counts.sample_total(session, dataset.id)
            counts.forget_dataset(session, dataset.id)
            session.execute(sa_delete(CurrentLabel).where(CurrentLabel.sample_id.in_(samples)))
            session.execute(sa_delete(LabelEvent).where(LabelEvent.sample_id.in_(samples)))
            session.execute(sa_delete(Acquisition).where(Acquisition.run_id.in_(runs)))
            session.execute(sa_delete(Round).where(Round.run_id.in_(runs)))
            session.execute(sa_delete(Run).where(Run.dataset_id == dataset.id))
            session.execute(sa_delete(Sample).where(Sample.dataset_id == dataset.id))
            session.execute(sa_delete(ImportRecord).where(ImportRecord.dataset_id == dataset.id))
            session.execute(sa_delete(Dataset).where(Dataset.id == dataset.id))
            return count

        removed = self._writing(delete_rows)
        log.info("event=dataset_deleted dataset=%s samples=%d", name, removed)
        return removed
