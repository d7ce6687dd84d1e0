"""Samples: list pages of samples, count them per split and label, export the labelled set (imports.py stores them)."""

from __future__ import annotations

import bisect
import io
from collections.abc import Iterator, Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from lesslabels.common import spreadsheet
from lesslabels.common import errors
from lesslabels.contract.shards import Shard
from lesslabels.contract.vocabulary import SPLITS
from lesslabels.pool import counts, subset
from lesslabels.pool.base import StorePart, find_dataset, find_run
from lesslabels.common.timeutil import rfc3339
from lesslabels.pool.tables import CurrentLabel, LabelEvent, Sample, run_scope
from lesslabels.pool.records import SampleRecord, SplitCount

MAX_PAGE = 5000
#: The largest sample id there can be (``samples.id`` is an INTEGER: 32 bits on PostgreSQL).
MAX_ID = 2**31 - 1


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
        subset_size: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        annotator: str | None = None,
    ) -> Iterator[tuple[list[SampleRecord], int, int]]:
        """Yield pages ``(samples, last_id, total)`` in id order; ``total`` is counted for the first page.

        ``subset_size``: only the matching samples first in the order of ``subset_seed`` (``subset``),
        drawn in the database; ``sample_ids``: only those of these ids that match; ``shard``: only
        those of them in that shard (of the subset, which is drawn over every matching sample first,
        so that the shards of a subset split it without overlap or loss); ``annotator``: only samples
        whose label in force that person gave. Each sample carries its label's annotator, source
        and time."""
        if state not in ("any", "labelled", "unlabelled"):
            raise errors.InvalidArgument(f"unknown label state {errors.quote(state)}")
        if page_size < 0 or limit < 0 or after_id < 0:
            raise errors.InvalidArgument("page_size, limit and page_token must not be negative")
        if subset_size < 0:
            raise errors.InvalidArgument(
                f"subset.size must not be negative, got {subset_size} (0 lists every matching sample)"
            )
        if subset_size and len(sample_ids):
            raise errors.InvalidArgument("give a random subset or sample_ids, not both")
        page_size = min(page_size or 500, MAX_PAGE)
        if include_gold and split not in ("test", "dev"):
            raise errors.InvalidArgument(
                "include_gold is only allowed for the test and dev splits: train-split gold labels are "
                "the hidden oracle, revealed only for samples a run acquired"
            )
        scope = run_scope(run_id)
        labels_join = and_(CurrentLabel.sample_id == Sample.id, CurrentLabel.scope == scope)
        chosen: list[int] | None = None  # the ids to list, ascending, when a subset or ids were asked for
        with self._reading() as session:
            dataset = find_dataset(session, dataset_name)
            if run_id:
                find_run(session, run_id, dataset_id=dataset.id)
            conditions = [Sample.dataset_id == dataset.id]
            if split:
                conditions.append(Sample.split == split)
            if state == "labelled":
                conditions.append(CurrentLabel.label.is_not(None))
            elif state == "unlabelled":
                conditions.append(CurrentLabel.label.is_(None))
            if annotator is not None:
                given_by = select(LabelEvent.id).where(LabelEvent.annotator == annotator)
                conditions.append(CurrentLabel.event_id.in_(given_by))
            in_shard = [] if shard is None else [subset.in_shard_sql(Sample.id, shard)]
            if subset_size:
                drawn = (
                    select(Sample.id)
                    .outerjoin(CurrentLabel, labels_join)
                    .where(*conditions)
                    .order_by(subset.rank_sql(Sample.id, subset_seed), Sample.id)
                    .limit(subset_size)
                    .subquery()
                )
                shard_of_drawn = [] if shard is None else [subset.in_shard_sql(drawn.c.id, shard)]
                chosen = sorted(session.scalars(select(drawn.c.id).where(*shard_of_drawn)))
                total = len(chosen)
            elif len(sample_ids):
                # An id outside the id column's range (32-bit on PostgreSQL) is nobody's: leave it out.
                chosen = sorted({int(i) for i in sample_ids if 0 < i <= MAX_ID})
                total = 0
                for start in range(0, len(chosen), MAX_PAGE):
                    total += session.execute(
                        select(func.count())
                        .select_from(Sample)
                        .outerjoin(CurrentLabel, labels_join)
                        .where(*conditions, *in_shard, Sample.id.in_(chosen[start : start + MAX_PAGE]))
                    ).scalar_one()
            elif shard is None and annotator is None:
                total = _kept_total(session, dataset.id, scope, split, state)
            else:
                total = session.execute(
                    select(func.count())
                    .select_from(Sample)
                    .outerjoin(CurrentLabel, labels_join)
                    .where(*conditions, *in_shard)
                ).scalar_one()
            if limit:
                total = min(total, limit)
        conditions += in_shard
        if chosen is not None:
            # Resume after a page token: the ids after it (a token need not be one of them).
            chosen = chosen[bisect.bisect_right(chosen, after_id) :]
        columns = (
            Sample.id,
            Sample.text,
            Sample.split,
            Sample.row,
            Sample.gold_label,
            Sample.external_id,
            CurrentLabel.label,
            LabelEvent.annotator,
            LabelEvent.source,
            LabelEvent.created_at,
        )
        events_join = LabelEvent.id == CurrentLabel.event_id
        yielded = 0
        while True:
            take = page_size if not limit else min(page_size, limit - yielded)
            if take <= 0:
                return
            with self._reading() as session:
                if chosen is None:
                    rows = session.execute(
                        select(*columns)
                        .outerjoin(CurrentLabel, labels_join)
                        .outerjoin(LabelEvent, events_join)
                        .where(*conditions, Sample.id > after_id)
                        .order_by(Sample.id)
                        .limit(take)
                    ).all()
                    exhausted = len(rows) < take
                else:
                    # The next ids in order, until a page is full or none are left (some may no longer match).
                    rows = []
                    while chosen and len(rows) < take:
                        batch, chosen = chosen[: take - len(rows)], chosen[take - len(rows) :]
                        rows += session.execute(
                            select(*columns)
                            .outerjoin(CurrentLabel, labels_join)
                            .outerjoin(LabelEvent, events_join)
                            .where(*conditions, Sample.id.in_(batch))
                            .order_by(Sample.id)
                        ).all()
                        after_id = batch[-1]
                    exhausted = not chosen
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
                    r.annotator or "" if r.label else "",
                    r.source or "" if r.label else "",
                    r.created_at if r.label else None,
                )
                for r in rows
            ]
            yielded += len(page)
            if page and chosen is None:
                after_id = page[-1].id
            last_page = exhausted or (limit and yielded >= limit)
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
            for split, gold, n in counts.samples_by_gold(session, dataset.id):
                result[split].total += n
                result[split].gold_by_label[gold] = n
            for split, label, n in counts.labels_by_split(session, dataset.id, scope):
                result[split].labelled += n
                result[split].labelled_by_label[label] = n
            return result

    def export_labels(self, dataset_name: str, run_id: int = 0, chunk_rows: int = 1000) -> Iterator[bytes]:
        """The labelled set as CSV, in chunks: ``label,text`` (then ``id`` when the dataset's samples
        carry the user's own ids), then where each label came from: ``sample_id``, ``annotator``,
        ``labelled_at`` (RFC 3339, UTC) and ``label_source``. ``lesslabels import`` reads the first
        ones and leaves the provenance columns out, so an export imports back."""
        with self._reading() as session:
            dataset = find_dataset(session, dataset_name)
            with_ids = (
                session.scalar(
                    select(Sample.id).where(Sample.dataset_id == dataset.id, Sample.external_id.is_not(None)).limit(1)
                )
                is not None
            )
        header = ["label", "text", *(["id"] if with_ids else []), *EXPORT_PROVENANCE]
        header_sent = False
        for page, _, _ in self.list_samples(dataset_name, state="labelled", run_id=run_id, page_size=chunk_rows):
            buffer = io.StringIO()
            writer = spreadsheet.writer(buffer, lineterminator="\n")
            if not header_sent:
                writer.writerow(header)
                header_sent = True
            writer.writerows(
                [s.label, s.text, *([s.external_id] if with_ids else []), *provenance_cells(s)] for s in page
            )
            yield buffer.getvalue().encode()
        if not header_sent:
            yield (",".join(header) + "\n").encode()


#: The columns of a label's provenance in the pool's CSV export, after label, text (and id).
EXPORT_PROVENANCE = ("sample_id", "annotator", "labelled_at", "label_source")


def provenance_cells(sample: SampleRecord) -> list:
    return [
        sample.id,
        sample.annotator,
        rfc3339(sample.labelled_at) if sample.labelled_at else "",
        sample.label_source,
    ]


def _kept_total(session: Session, dataset_id: int, scope: str, split: str | None, state: str) -> int:
    """How many samples of the dataset (in ``split``) are in label ``state`` in ``scope``, from the kept counts."""
    splits = [split] if split else []
    labelled = 0 if state == "any" else counts.labelled_total(session, dataset_id, scope, splits)
    if state == "labelled":
        return labelled
    return counts.sample_total(session, dataset_id, splits) - labelled
