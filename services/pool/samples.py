"""Samples: list pages of samples, count them per split and label, export the labelled set (imports.py stores them)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from sqlalchemy import and_, func, select

from lesslabels.common import errors
from lesslabels.common.vocabulary import SPLITS
from lesslabels.pool.base import StorePart, find_dataset, find_run
from lesslabels.pool.models import CurrentLabel, Sample, run_scope
from lesslabels.pool.records import SampleRecord, SplitCount

MAX_PAGE = 5000


class SamplesPart(StorePart):
    """The sample operations of ``PoolStore``."""

    def list_samples(
        self,
        dataset_name: str,
        *,
        split: str | None = None,
        state: str = "any",
        run_id: int = 0,
        page_size: int = 500,
        after_id: int = 0,
        limit: int = 0,
        include_gold: bool = False,
    ) -> Iterator[tuple[list[SampleRecord], int, int]]:
        """Yield pages ``(samples, last_id, total)`` in id order; ``total`` is counted for the first page."""
        if state not in ("any", "labelled", "unlabelled"):
            raise errors.InvalidArgument(f"unknown label state {errors.quote(state)}")
        if page_size < 0 or limit < 0 or after_id < 0:
            raise errors.InvalidArgument("page_size, limit and page_token must not be negative")
        page_size = min(page_size or 500, MAX_PAGE)
        if include_gold and split not in ("test", "dev"):
            raise errors.InvalidArgument(
                "include_gold is only allowed for the test and dev splits: train-split gold labels are "
                "the hidden oracle, revealed only for samples a run acquired"
            )
        scope = run_scope(run_id)
        with self._reading() as session:
            dataset = find_dataset(session, dataset_name)
            if run_id:
                find_run(session, run_id, dataset_id=dataset.id)
            labels_join = and_(CurrentLabel.sample_id == Sample.id, CurrentLabel.scope == scope)
            conditions = [Sample.dataset_id == dataset.id]
            if split:
                conditions.append(Sample.split == split)
            if state == "labelled":
                conditions.append(CurrentLabel.label.is_not(None))
            elif state == "unlabelled":
                conditions.append(CurrentLabel.label.is_(None))
            total = session.execute(
                select(func.count()).select_from(Sample).outerjoin(CurrentLabel, labels_join).where(*conditions)
            ).scalar_one()
            if limit:
                total = min(total, limit)
        yielded = 0
        while True:
            take = page_size if not limit else min(page_size, limit - yielded)
            if take <= 0:
                return
            with self._reading() as session:
                rows = session.execute(
                    select(
                        Sample.id,
                        Sample.text,
                        Sample.split,
                        Sample.row,
                        Sample.gold_label,
                        Sample.external_id,
                        CurrentLabel.label,
                    )
                    .outerjoin(CurrentLabel, labels_join)
                    .where(*conditions, Sample.id > after_id)
                    .order_by(Sample.id)
                    .limit(take)
                ).all()
            page = [
                SampleRecord(
                    r.id,
                    dataset_name,
                    r.text,
                    r.split,
                    r.row,
                    r.label or "",
                    (r.gold_label or "") if include_gold else "",
                    r.external_id or "",
                )
                for r in rows
            ]
            yielded += len(page)
            if page:
                after_id = page[-1].id
            last_page = len(page) < take or (limit and yielded >= limit)
            yield page, (0 if last_page else after_id), total
            if last_page:
                return

    def counts(self, dataset_name: str, run_id: int = 0) -> dict[str, SplitCount]:
        scope = run_scope(run_id)
        with self._reading() as session:
            dataset = find_dataset(session, dataset_name)
            if run_id:
                find_run(session, run_id, dataset_id=dataset.id)
            result = {split: SplitCount() for split in SPLITS}
            for split, gold, n in session.execute(
                select(Sample.split, Sample.gold_label, func.count())
                .where(Sample.dataset_id == dataset.id)
                .group_by(Sample.split, Sample.gold_label)
            ):
                result[split].total += n
                result[split].gold_by_label[gold or ""] = n
            for split, label, n in session.execute(
                select(Sample.split, CurrentLabel.label, func.count())
                .join(CurrentLabel, and_(CurrentLabel.sample_id == Sample.id, CurrentLabel.scope == scope))
                .where(Sample.dataset_id == dataset.id)
                .group_by(Sample.split, CurrentLabel.label)
            ):
                result[split].labelled += n
                result[split].labelled_by_label[label] = n
            return result

    def export_labels(self, dataset_name: str, run_id: int = 0, chunk_rows: int = 1000) -> Iterator[bytes]:
        """The labelled set as CSV with a ``label,text`` header (``label,text,id`` when the dataset's
        samples carry the user's own ids), in chunks."""
        with self._reading() as session:
            dataset = find_dataset(session, dataset_name)
            with_ids = (
                session.scalar(
                    select(Sample.id).where(Sample.dataset_id == dataset.id, Sample.external_id.is_not(None)).limit(1)
                )
                is not None
            )
        header = ["label", "text", "id"] if with_ids else ["label", "text"]
        header_sent = False
        for page, _, _ in self.list_samples(dataset_name, state="labelled", run_id=run_id, page_size=chunk_rows):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            if not header_sent:
                writer.writerow(header)
                header_sent = True
            if with_ids:
                writer.writerows([s.label, s.text, s.external_id] for s in page)
            else:
                writer.writerows([s.label, s.text] for s in page)
            yield buffer.getvalue().encode()
        if not header_sent:
            yield (",".join(header) + "\n").encode()
