"""Samples: import a file, list pages of samples, count them per split and label, export the labelled set."""

from __future__ import annotations

import collections
import csv
import io
import json
import logging
from collections.abc import Iterator

from sqlalchemy import and_, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lesslabels.common import errors
from lesslabels.common.vocabulary import SPLITS
from lesslabels.pool import importers
from lesslabels.pool.base import NAME_RE, StorePart, find_dataset, find_run
from lesslabels.pool.labelset import MAX_LABEL_LENGTH, check_not_near_duplicate, similar_labels
from lesslabels.pool.models import CurrentLabel, Dataset, Sample, run_scope
from lesslabels.pool.records import DuplicateInfo, ImportResult, SampleRecord, SplitCount
from lesslabels.pool.texthash import text_hash

log = logging.getLogger(__name__)

MAX_PAGE = 5000
_INSERT_CHUNK = 1000


class _Checked(Exception):
    """Raised out of a check-only import's transaction so that nothing it did is kept."""

    def __init__(self, result: ImportResult):
        super().__init__("check only")
        self.result = result


def _refuse_similar_labels(new: list[str], existing: list[str]) -> None:
    pairs = similar_labels(new, existing)
    if pairs:
        shown = "; ".join(f"{a!r} and {b!r}" for a, b in pairs[:10])
        raise errors.InvalidArgument(
            f"label names that look like one class spelled differently: {shown} (they would become "
            f"separate classes); fix the spelling in the file, or pass --allow-similar-labels if they are "
            f"really different classes"
        )


def _refuse_known_ids(session: Session, dataset_id: int, rows: list[importers.ImportRow]) -> None:
    ids = [row.external_id for row in rows if row.external_id is not None]
    for start in range(0, len(ids), 500):
        taken = session.scalars(
            select(Sample.external_id).where(
                Sample.dataset_id == dataset_id, Sample.external_id.in_(ids[start : start + 500])
            )
        ).first()
        if taken is not None:
            row = next(r for r in rows if r.external_id == taken)
            raise errors.InvalidArgument(f"row {row.row + 1}: id {taken!r} is already in the dataset")


class SamplesPart(StorePart):
    """The sample operations of ``PoolStore``."""

    def import_samples(
        self,
        dataset_name: str,
        data: bytes,
        *,
        fmt: importers.Format = importers.Format.AUTO,
        default_split: str = "train",
        create_dataset: bool = False,
        keep_whitespace: bool = False,
        columns: importers.Columns = importers.DEFAULT_COLUMNS,
        allow_similar_labels: bool = False,
        check_only: bool = False,
    ) -> ImportResult:
        """Import a whole file in one transaction: all rows are stored or none is.

        ``check_only`` does every check and reports what would be stored, then stores nothing."""
        if default_split not in SPLITS:
            raise errors.InvalidArgument(f"unknown split {errors.quote(default_split)}")
        if not create_dataset:
            with self._reading() as session:
                find_dataset(session, dataset_name)  # NOT_FOUND before spending time on parsing
        rows, fmt, used = importers.parse(data, fmt, keep_whitespace=keep_whitespace, columns=columns)
        for row in rows:
            if row.label is not None and len(row.label) > MAX_LABEL_LENGTH:
                raise errors.InvalidArgument(f"row {row.row + 1}: label longer than {MAX_LABEL_LENGTH} characters")

        def do_import(session: Session) -> ImportResult:
            dataset = session.scalar(select(Dataset).where(Dataset.name == dataset_name))
            if dataset is None:
                if not create_dataset:
                    raise errors.NotFound(
                        f"dataset {errors.quote(dataset_name)} not found (create it first, or ask to create it)"
                    )
                if not NAME_RE.match(dataset_name or ""):
                    raise errors.InvalidArgument(f"invalid dataset name {errors.quote(dataset_name)}")
                dataset = Dataset(name=dataset_name, description="", labels_json="[]", labels_fixed=False)
                session.add(dataset)
                session.flush()
            labels = json.loads(dataset.labels_json)
            known = set(labels)
            new_labels = list(dict.fromkeys(r.label for r in rows if r.label is not None and r.label not in known))
            for row in rows:
                if row.label is not None and row.label not in known:
                    if dataset.labels_fixed:
                        raise errors.InvalidArgument(
                            f"row {row.row + 1}: label {errors.quote(row.label)} is not in the dataset's label set {labels}"
                        )
                    check_not_near_duplicate(row.label, labels, f"row {row.row + 1}")
                    labels.append(row.label)
                    known.add(row.label)
            if not allow_similar_labels and not dataset.labels_fixed:
                _refuse_similar_labels(new_labels, [label for label in labels if label not in new_labels])
            dataset.labels_json = json.dumps(labels)
            duplicates = self._find_duplicates(session, dataset.id, rows)
            _refuse_known_ids(session, dataset.id, rows)
            values = [
                dict(
                    dataset_id=dataset.id,
                    row=row.row,
                    text=row.text,
                    text_hash=text_hash(row.text),
                    split=row.split or default_split,
                    gold_label=row.label,
                    external_id=row.external_id,
                )
                for row in rows
            ]
            by_label = collections.Counter(row.label or "" for row in rows)
            by_split = collections.Counter(row.split or default_split for row in rows)
            result = ImportResult(
                dataset_name, len(rows), dict(by_label), duplicates, fmt, dict(by_split), used, check_only
            )
            if check_only:
                raise _Checked(result)  # rolls the transaction back: a created dataset is not kept either
            for start in range(0, len(values), _INSERT_CHUNK):
                session.execute(insert(Sample), values[start : start + _INSERT_CHUNK])
            return result

        try:
            result = self._writing(do_import)
        except _Checked as checked:
            return checked.result
        except IntegrityError as exc:
            raise errors.AlreadyExists(
                f"dataset {errors.quote(dataset_name)} was created concurrently: {exc.orig}"
            ) from None
        log.info(
            "event=imported dataset=%s rows=%d duplicates=%d", dataset_name, result.imported, result.duplicate_rows
        )
        return result

    @staticmethod
    def _find_duplicates(session: Session, dataset_id: int, rows: list[importers.ImportRow]) -> list[DuplicateInfo]:
        seen: dict[str, list[int]] = collections.defaultdict(list)
        for row in rows:
            seen[row.text].append(row.row)
        # The index (dataset_id, text_hash) finds the stored rows that may be equal; their texts decide.
        hashes: dict[int, list[str]] = collections.defaultdict(list)
        for text in seen:
            hashes[text_hash(text)].append(text)
        existing: set[str] = set()
        keys = list(hashes)
        for start in range(0, len(keys), 500):
            for stored in session.scalars(
                select(Sample.text).where(
                    Sample.dataset_id == dataset_id, Sample.text_hash.in_(keys[start : start + 500])
                )
            ):
                if stored in seen:
                    existing.add(stored)
        duplicates = []
        for text, occurrences in seen.items():
            if text in existing:
                duplicates.append(DuplicateInfo(text, occurrences, -1))
            elif len(occurrences) > 1:
                duplicates.append(DuplicateInfo(text, occurrences[1:], occurrences[0]))
        return duplicates

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
