"""The pool's core: every operation of the pool service, on SQLAlchemy, knowing nothing of gRPC.

Values cross this boundary as plain dataclasses and strings ("train", "oracle", "RUNNING");
services/pool/servicer.py converts them to and from protobuf.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import datetime as dt
import io
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import and_, func, insert, select
from sqlalchemy import delete as sa_delete
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lesslabels.common import errors
from lesslabels.common.timeutil import utcnow
from lesslabels.pool import importers
from lesslabels.pool.db import make_engine, migrate
from lesslabels.pool.models import (
    REQUEST_ID_MAX, Acquisition, CurrentLabel, Dataset, LabelEvent, Round, Run, Sample, run_scope,
)

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SOURCES = ("seed", "oracle", "human")
SPLITS = ("train", "test", "dev")
RUN_STATES = ("PENDING", "RUNNING", "WAITING_FOR_LABELS", "COMPLETED", "CANCELLED", "FAILED")
ACTIVE_RUN_STATES = ("PENDING", "RUNNING", "WAITING_FOR_LABELS")
ENDED_RUN_STATES = ("COMPLETED", "CANCELLED", "FAILED")
RUN_STEPS = ("SEED", "LABEL", "TRAIN", "EVALUATE", "SCORE", "SELECT", "DONE")
MAX_PAGE = 5000
MAX_LABEL_LENGTH = 128
_INSERT_CHUNK = 1000


@dataclasses.dataclass
class DatasetInfo:
    name: str
    description: str
    labels: list[str]
    counts: dict[str, int]  # per split
    labelled: int
    created_at: dt.datetime


@dataclasses.dataclass
class LabelEventRecord:
    sample_id: int
    label: str
    source: str
    annotator: str
    created_at: dt.datetime


@dataclasses.dataclass
class SampleRecord:
    id: int
    dataset: str
    text: str
    split: str
    row: int
    label: str = ""
    gold_label: str = ""


@dataclasses.dataclass
class DuplicateInfo:
    text: str
    rows: list[int]
    first_row: int  # -1 when the text was already in the dataset


@dataclasses.dataclass
class ImportResult:
    dataset: str
    imported: int
    by_label: dict[str, int]
    duplicates: list[DuplicateInfo]
    format: importers.Format

    @property
    def duplicate_rows(self) -> int:
        return sum(len(d.rows) for d in self.duplicates)


@dataclasses.dataclass
class LabelResult:
    recorded: int = 0
    unchanged: int = 0
    changed: int = 0
    labels: list[tuple[int, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SplitCount:
    total: int = 0
    labelled: int = 0
    labelled_by_label: dict[str, int] = dataclasses.field(default_factory=dict)
    gold_by_label: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunRecord:
    id: int
    dataset: str
    config_json: str
    state: str
    step: str
    round: int
    error: str
    stop_reason: str
    created_at: dt.datetime
    updated_at: dt.datetime
    labelled_count: int
    pool_size: int


@dataclasses.dataclass
class RoundRecord:
    run_id: int
    index: int
    labelled_count: int = 0
    train_job_id: str = ""
    checkpoint_id: str = ""
    test_metrics: dict = dataclasses.field(default_factory=dict)
    agreement: float = 0.0
    selected_count: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    train_seconds: float = 0.0
    score_seconds: float = 0.0


@dataclasses.dataclass
class AcquisitionRecord:
    sample_id: int
    round: int
    strategy: str
    score: float
    label: str = ""
    text: str = ""


class PoolStore:
    """All pool operations. Thread-safe: each call runs in its own short transaction."""

    def __init__(self, database_url: str, *, migrate_schema: bool = True):
        if migrate_schema:
            migrate(database_url)
        self.engine = make_engine(database_url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(write=True), expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- sessions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    def _writing(self, fn, *, attempts: int = 6):
        """Run ``fn(session)`` in a write transaction, retried when it lost a race.

        A concurrent writer can win a uniqueness race (two submissions of the same label,
        same idempotency key, same new dataset) or a lock; the retry then reads what the
        winner wrote and reports it, so the outcome is as if the calls had run in turn.
        """
        for attempt in range(attempts):
            try:
                with self._write() as session, session.begin():
                    return fn(session)
            except (IntegrityError, OperationalError) as exc:
                text = str(exc).lower()
                transient = isinstance(exc, IntegrityError) or any(
                    word in text for word in ("locked", "deadlock", "could not serialize")
                )
                if attempt == attempts - 1 or not transient:
                    raise
                log.info("event=write_retry attempt=%d reason=%s", attempt + 1, type(exc.orig).__name__)
                time.sleep(0.02 * (attempt + 1))

    # -- datasets -----------------------------------------------------------------------

    def _dataset(self, session: Session, name: str) -> Dataset:
        if not name:
            raise errors.InvalidArgument("dataset name is required")
        dataset = session.scalar(select(Dataset).where(Dataset.name == name))
        if dataset is None:
            raise errors.NotFound(f"dataset {name!r} not found")
        return dataset

    def create_dataset(self, name: str, description: str = "", labels: Sequence[str] = ()) -> DatasetInfo:
        if not NAME_RE.match(name or ""):
            raise errors.InvalidArgument(
                f"invalid dataset name {name!r}: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        clean = _validate_label_set(labels)

        def create(session: Session):
            if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
                raise errors.AlreadyExists(f"dataset {name!r} already exists")
            session.add(Dataset(name=name, description=description, labels_json=json.dumps(clean), labels_fixed=bool(clean)))

        try:
            self._writing(create)
        except IntegrityError:
            raise errors.AlreadyExists(f"dataset {name!r} already exists") from None
        return self.get_dataset(name)

    def get_dataset(self, name: str) -> DatasetInfo:
        with self._reading() as session:
            return self._dataset_info(session, self._dataset(session, name))

    def list_datasets(self) -> list[DatasetInfo]:
        with self._reading() as session:
            return [self._dataset_info(session, d) for d in session.scalars(select(Dataset).order_by(Dataset.name))]

    def _dataset_info(self, session: Session, dataset: Dataset) -> DatasetInfo:
        counts = dict.fromkeys(SPLITS, 0)
        for split, n in session.execute(
            select(Sample.split, func.count()).where(Sample.dataset_id == dataset.id).group_by(Sample.split)
        ):
            counts[split] = n
        labelled = session.execute(
            select(func.count()).select_from(CurrentLabel).join(Sample, Sample.id == CurrentLabel.sample_id)
            .where(Sample.dataset_id == dataset.id, CurrentLabel.scope == run_scope(0))
        ).scalar_one()
        return DatasetInfo(dataset.name, dataset.description, json.loads(dataset.labels_json), counts, labelled, dataset.created_at)

    def set_labels(self, name: str, labels: Sequence[str]) -> DatasetInfo:
        """Declare the dataset's label set (an explicit change). A label in use may not be dropped."""
        clean = _validate_label_set(labels)
        if not clean:
            raise errors.InvalidArgument("the label set must not be empty")

        def change(session: Session) -> None:
            dataset = self._dataset(session, name)
            sample_ids = select(Sample.id).where(Sample.dataset_id == dataset.id)
            in_use = set(session.scalars(select(CurrentLabel.label).where(CurrentLabel.sample_id.in_(sample_ids)).distinct()))
            in_use |= {g for g in session.scalars(select(Sample.gold_label).where(Sample.dataset_id == dataset.id).distinct()) if g}
            dropped = sorted(in_use - set(clean))
            if dropped:
                raise errors.FailedPrecondition(
                    f"labels {dropped} are in use in dataset {name!r} (gold or given labels); keep them in the label set"
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
            dataset = self._dataset(session, name)
            active = session.scalars(
                select(Run.id).where(Run.dataset_id == dataset.id, Run.state.in_(ACTIVE_RUN_STATES))
            ).all()
            if active:
                raise errors.FailedPrecondition(
                    f"dataset {name!r} has active runs {list(active)}: cancel them before deleting the dataset"
                )
            samples = select(Sample.id).where(Sample.dataset_id == dataset.id).scalar_subquery()
            runs = select(Run.id).where(Run.dataset_id == dataset.id).scalar_subquery()
            count = session.scalar(select(func.count()).select_from(Sample).where(Sample.dataset_id == dataset.id))
            session.execute(sa_delete(CurrentLabel).where(CurrentLabel.sample_id.in_(samples)))
            session.execute(sa_delete(LabelEvent).where(LabelEvent.sample_id.in_(samples)))
            session.execute(sa_delete(Acquisition).where(Acquisition.run_id.in_(runs)))
            session.execute(sa_delete(Round).where(Round.run_id.in_(runs)))
            session.execute(sa_delete(Run).where(Run.dataset_id == dataset.id))
            session.execute(sa_delete(Sample).where(Sample.dataset_id == dataset.id))
            session.execute(sa_delete(Dataset).where(Dataset.id == dataset.id))
            return count or 0  # COUNT(*) is never NULL; 0 keeps the type an int

        removed = self._writing(delete_rows)
        log.info("event=dataset_deleted dataset=%s samples=%d", name, removed)
        return removed

    def label_history(self, dataset_name: str, sample_id: int) -> list[LabelEventRecord]:
        """Every label given to a sample in the dataset scope, oldest first (the last is in force)."""
        with self._reading() as session:
            dataset = self._dataset(session, dataset_name)
            if session.scalar(select(Sample.id).where(Sample.id == sample_id, Sample.dataset_id == dataset.id)) is None:
                raise errors.NotFound(f"sample {sample_id} not found in dataset {dataset_name!r}")
            return [
                LabelEventRecord(e.sample_id, e.label, e.source, e.annotator, e.created_at)
                for e in session.scalars(
                    select(LabelEvent).where(LabelEvent.sample_id == sample_id, LabelEvent.scope == run_scope(0))
                    .order_by(LabelEvent.id)
                )
            ]

    # -- import -------------------------------------------------------------------------

    def import_samples(
        self,
        dataset_name: str,
        data: bytes,
        *,
        fmt: importers.Format = importers.Format.AUTO,
        default_split: str = "train",
        create_dataset: bool = False,
        keep_whitespace: bool = False,
    ) -> ImportResult:
        """Import a whole file in one transaction: all rows are stored or none is."""
        if default_split not in SPLITS:
            raise errors.InvalidArgument(f"unknown split {default_split!r}")
        if not create_dataset:
            self.get_dataset(dataset_name)  # NOT_FOUND before spending time on parsing
        rows, fmt = importers.parse(data, fmt, keep_whitespace=keep_whitespace)
        for row in rows:
            if row.label is not None and len(row.label) > MAX_LABEL_LENGTH:
                raise errors.InvalidArgument(f"row {row.row + 1}: label longer than {MAX_LABEL_LENGTH} characters")

        def do_import(session: Session) -> ImportResult:
            dataset = session.scalar(select(Dataset).where(Dataset.name == dataset_name))
            if dataset is None:
                if not create_dataset:
                    raise errors.NotFound(f"dataset {dataset_name!r} not found (create it first, or ask to create it)")
                if not NAME_RE.match(dataset_name or ""):
                    raise errors.InvalidArgument(f"invalid dataset name {dataset_name!r}")
                dataset = Dataset(name=dataset_name, description="", labels_json="[]", labels_fixed=False)
                session.add(dataset)
                session.flush()
            labels = json.loads(dataset.labels_json)
            known = set(labels)
            for row in rows:
                if row.label is not None and row.label not in known:
                    if dataset.labels_fixed:
                        raise errors.InvalidArgument(
                            f"row {row.row + 1}: label {row.label!r} is not in the dataset's label set {labels}"
                        )
                    check_not_near_duplicate(row.label, labels, f"row {row.row + 1}")
                    labels.append(row.label)
                    known.add(row.label)
            dataset.labels_json = json.dumps(labels)
            duplicates = self._find_duplicates(session, dataset.id, rows)
            values = [
                dict(dataset_id=dataset.id, row=row.row, text=row.text, split=row.split or default_split, gold_label=row.label)
                for row in rows
            ]
            for start in range(0, len(values), _INSERT_CHUNK):
                session.execute(insert(Sample), values[start : start + _INSERT_CHUNK])
            by_label = collections.Counter(row.label or "" for row in rows)
            return ImportResult(dataset_name, len(rows), dict(by_label), duplicates, fmt)

        try:
            result = self._writing(do_import)
        except IntegrityError as exc:
            raise errors.AlreadyExists(f"dataset {dataset_name!r} was created concurrently: {exc.orig}") from None
        log.info("event=imported dataset=%s rows=%d duplicates=%d", dataset_name, result.imported, result.duplicate_rows)
        return result

    @staticmethod
    def _find_duplicates(session: Session, dataset_id: int, rows: list[importers.ImportRow]) -> list[DuplicateInfo]:
        seen: dict[str, list[int]] = collections.defaultdict(list)
        for row in rows:
            seen[row.text].append(row.row)
        existing: set[str] = set()
        texts = list(seen)
        for start in range(0, len(texts), 500):
            chunk = texts[start : start + 500]
            existing.update(session.scalars(select(Sample.text).where(Sample.dataset_id == dataset_id, Sample.text.in_(chunk))))
        duplicates = []
        for text, occurrences in seen.items():
            if text in existing:
                duplicates.append(DuplicateInfo(text, occurrences, -1))
            elif len(occurrences) > 1:
                duplicates.append(DuplicateInfo(text, occurrences[1:], occurrences[0]))
        return duplicates

    # -- samples ------------------------------------------------------------------------

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
            raise errors.InvalidArgument(f"unknown label state {state!r}")
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
            dataset = self._dataset(session, dataset_name)
            if run_id:
                self._run(session, run_id, dataset_id=dataset.id)
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
                    select(Sample.id, Sample.text, Sample.split, Sample.row, Sample.gold_label, CurrentLabel.label)
                    .outerjoin(CurrentLabel, labels_join)
                    .where(*conditions, Sample.id > after_id)
                    .order_by(Sample.id)
                    .limit(take)
                ).all()
            page = [
                SampleRecord(r.id, dataset_name, r.text, r.split, r.row, r.label or "", (r.gold_label or "") if include_gold else "")
                for r in rows
            ]
            yielded += len(page)
            if page:
                after_id = page[-1].id
            last_page = len(page) < take or (limit and yielded >= limit)
            yield page, (0 if last_page else after_id), total
            if last_page:
                return

    # -- labels -------------------------------------------------------------------------

    def submit_labels(
        self,
        dataset_name: str,
        assignments: Sequence[tuple[int, str]],
        *,
        run_id: int = 0,
        source: str = "human",
        annotator: str = "",
        idempotency_key: str = "",
    ) -> LabelResult:
        """Record labels. Idempotent twice over: a key seen before changes nothing, and a label equal
        to the one in force is reported unchanged instead of adding an event."""
        if source not in SOURCES:
            raise errors.InvalidArgument(f"unknown label source {source!r}")
        ids = [sid for sid, _ in assignments]
        if len(set(ids)) != len(ids):
            dup = next(sid for sid, n in collections.Counter(ids).items() if n > 1)
            raise errors.InvalidArgument(f"sample {dup} appears more than once in one submission")

        def submit(session: Session) -> LabelResult:
            dataset = self._dataset(session, dataset_name)
            if run_id:
                self._run(session, run_id, dataset_id=dataset.id)
            label_set = json.loads(dataset.labels_json)
            allowed = list(label_set)
            samples = {
                s.id: s for s in session.scalars(select(Sample).where(Sample.dataset_id == dataset.id, Sample.id.in_(ids)))
            }
            for index, (sample_id, label) in enumerate(assignments):
                where = f"label {index + 1} (sample {sample_id})"
                if sample_id not in samples:
                    raise errors.InvalidArgument(f"{where}: no such sample in dataset {dataset_name!r}")
                if not label or not label.strip():
                    raise errors.InvalidArgument(f"{where}: empty label")
                if label_set and label not in label_set:
                    check_not_near_duplicate(label, label_set, where)
                    raise errors.InvalidArgument(f"{where}: label {label!r} is not in the dataset's label set {label_set}")
                if not label_set and label not in allowed:
                    # No label set yet: it is taken from the labels people give.
                    if len(label) > MAX_LABEL_LENGTH:
                        raise errors.InvalidArgument(f"{where}: label longer than {MAX_LABEL_LENGTH} characters")
                    check_not_near_duplicate(label, allowed, where)
                    allowed.append(label)
            if not label_set and allowed:
                dataset.labels_json = json.dumps(allowed)
            return self._apply_labels(session, dataset, assignments, run_id, source, annotator, idempotency_key)

        return self._writing(submit)

    def _apply_labels(self, session, dataset, assignments, run_id, source, annotator, idempotency_key) -> LabelResult:
        scope = run_scope(run_id)
        result = LabelResult()
        current = {
            c.sample_id: c
            for c in session.scalars(
                select(CurrentLabel).where(CurrentLabel.scope == scope, CurrentLabel.sample_id.in_([a[0] for a in assignments]))
            )
        }
        keys = [f"{idempotency_key}:{scope}:{sid}" if idempotency_key else None for sid, _ in assignments]
        seen_keys = set(session.scalars(select(LabelEvent.idempotency_key).where(LabelEvent.idempotency_key.in_([k for k in keys if k]))))
        for (sample_id, label), key in zip(assignments, keys, strict=True):
            existing = current.get(sample_id)
            if key in seen_keys or (existing is not None and existing.label == label):
                result.unchanged += 1
                result.labels.append((sample_id, existing.label if existing else label))
                continue
            event = LabelEvent(sample_id=sample_id, scope=scope, label=label, source=source, annotator=annotator, idempotency_key=key)
            session.add(event)
            session.flush()
            if existing is None:
                session.add(CurrentLabel(sample_id=sample_id, scope=scope, label=label, event_id=event.id))
                result.recorded += 1
            else:
                existing.label, existing.event_id = label, event.id
                result.changed += 1
            result.labels.append((sample_id, label))
        session.flush()
        if source == "human" and run_id:
            # A label a person gives belongs to the dataset: later human-mode runs reuse it.
            self._apply_labels(session, dataset, assignments, 0, source, annotator, idempotency_key)
        return result

    def reveal_labels(self, run_id: int, sample_ids: Sequence[int], source: str = "oracle") -> LabelResult:
        """The simulated oracle: label samples the run acquired with their hidden gold labels."""
        if source not in ("seed", "oracle"):
            raise errors.InvalidArgument(f"reveal source must be seed or oracle, not {source!r}")
        if len(set(sample_ids)) != len(sample_ids):
            raise errors.InvalidArgument("a sample id appears more than once")

        def reveal(session: Session) -> LabelResult:
            run = self._run(session, run_id)
            dataset = session.get(Dataset, run.dataset_id)
            acquired = set(
                session.scalars(select(Acquisition.sample_id).where(Acquisition.run_id == run_id, Acquisition.sample_id.in_(sample_ids)))
            )
            missing = [sid for sid in sample_ids if sid not in acquired]
            if missing:
                raise errors.FailedPrecondition(
                    f"run {run_id} has not acquired samples {missing[:10]}: only acquired samples can be revealed"
                )
            gold = dict(session.execute(select(Sample.id, Sample.gold_label).where(Sample.id.in_(sample_ids))).all())
            no_gold = [sid for sid in sample_ids if not gold.get(sid)]
            if no_gold:
                raise errors.FailedPrecondition(f"samples {no_gold[:10]} have no gold label to reveal (use human labelling)")
            assignments = [(sid, gold[sid]) for sid in sample_ids]
            return self._apply_labels(session, dataset, assignments, run_id, source, "oracle", f"reveal:{run_id}")

        return self._writing(reveal)

    def counts(self, dataset_name: str, run_id: int = 0) -> dict[str, SplitCount]:
        scope = run_scope(run_id)
        with self._reading() as session:
            dataset = self._dataset(session, dataset_name)
            if run_id:
                self._run(session, run_id, dataset_id=dataset.id)
            result = {split: SplitCount() for split in SPLITS}
            for split, gold, n in session.execute(
                select(Sample.split, Sample.gold_label, func.count()).where(Sample.dataset_id == dataset.id).group_by(Sample.split, Sample.gold_label)
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
        """The labelled set as CSV with a ``label,text`` header, in chunks."""
        header_sent = False
        for page, _, _ in self.list_samples(dataset_name, state="labelled", run_id=run_id, page_size=chunk_rows):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            if not header_sent:
                writer.writerow(["label", "text"])
                header_sent = True
            writer.writerows([s.label, s.text] for s in page)
            yield buffer.getvalue().encode()
        if not header_sent:
            yield b"label,text\n"

    # -- runs ---------------------------------------------------------------------------

    def _run(self, session: Session, run_id: int, *, dataset_id: int | None = None) -> Run:
        run = session.get(Run, run_id) if run_id > 0 else None
        if run is None:
            raise errors.NotFound(f"run {run_id} not found")
        if dataset_id is not None and run.dataset_id != dataset_id:
            raise errors.InvalidArgument(f"run {run_id} belongs to another dataset")
        return run

    def _run_record(self, session: Session, run: Run) -> RunRecord:
        dataset = session.get_one(Dataset, run.dataset_id)
        labelled = session.execute(select(func.count()).select_from(CurrentLabel).where(CurrentLabel.scope == run_scope(run.id))).scalar_one()
        pool = session.execute(select(func.count()).select_from(Sample).where(Sample.dataset_id == run.dataset_id, Sample.split == "train")).scalar_one()
        return RunRecord(
            run.id, dataset.name, run.config_json, run.state, run.step, run.round, run.error, run.stop_reason,
            run.created_at, run.updated_at, labelled, pool,
        )

    def create_run(self, dataset_name: str, config_json: str, request_id: str = "") -> RunRecord:
        """A new PENDING run; with ``request_id``, the run created before under that key if any."""
        if len(request_id) > REQUEST_ID_MAX:
            raise errors.InvalidArgument(f"request_id is {len(request_id)} characters; at most {REQUEST_ID_MAX}")

        def create(session: Session) -> int:
            if request_id:
                known = session.scalar(select(Run.id).where(Run.request_id == request_id))
                if known is not None:
                    return known
            dataset = self._dataset(session, dataset_name)
            run = Run(dataset_id=dataset.id, config_json=config_json, state="PENDING", step="SEED", round=0,
                      request_id=request_id or None)
            session.add(run)
            session.flush()
            return run.id

        return self.get_run(self._writing(create))

    def get_run(self, run_id: int) -> RunRecord:
        with self._reading() as session:
            return self._run_record(session, self._run(session, run_id))

    def list_runs(self, dataset_name: str = "", states: Iterable[str] = ()) -> list[RunRecord]:
        states = list(states)
        with self._reading() as session:
            query = select(Run).order_by(Run.id)
            if dataset_name:
                query = query.where(Run.dataset_id == self._dataset(session, dataset_name).id)
            if states:
                query = query.where(Run.state.in_(states))
            return [self._run_record(session, run) for run in session.scalars(query)]

    def update_run(
        self,
        run_id: int,
        *,
        state: str | None = None,
        step: str | None = None,
        round: int | None = None,
        error: str | None = None,
        stop_reason: str | None = None,
        expected_step: str | None = None,
        expected_round: int | None = None,
    ) -> RunRecord:
        if state is not None and state not in RUN_STATES:
            raise errors.InvalidArgument(f"unknown run state {state!r}")
        for name, value in (("step", step), ("expected_step", expected_step)):
            if value is not None and value not in RUN_STEPS:
                raise errors.InvalidArgument(f"unknown {name} {value!r}")
        if round is not None and round < 0:
            raise errors.InvalidArgument("round must not be negative")

        def update(session: Session) -> None:
            run = self._run(session, run_id)
            if expected_step is not None and (run.step != expected_step or (expected_round is not None and run.round != expected_round)):
                raise errors.FailedPrecondition(
                    f"run {run_id} is at step {run.step} round {run.round}, not {expected_step} round {expected_round}"
                )
            if state in ACTIVE_RUN_STATES and run.state in ENDED_RUN_STATES:
                # Resumed: the old outcome no longer describes the run.
                run.error, run.stop_reason = "", ""
            for name, value in (("state", state), ("step", step), ("round", round), ("error", error), ("stop_reason", stop_reason)):
                if value is not None:
                    setattr(run, name, value)
            run.updated_at = utcnow()

        self._writing(update)
        return self.get_run(run_id)

    def put_round(self, record: RoundRecord) -> RoundRecord:
        if record.index < 0:
            raise errors.InvalidArgument("round index must not be negative")

        def put(session: Session) -> None:
            self._run(session, record.run_id)
            row = session.get(Round, (record.run_id, record.index)) or Round(run_id=record.run_id, index=record.index)
            row.labelled_count = record.labelled_count
            row.train_job_id = record.train_job_id
            row.checkpoint_id = record.checkpoint_id
            row.test_metrics_json = json.dumps(record.test_metrics)
            row.agreement = record.agreement
            row.selected_count = record.selected_count
            row.started_at = record.started_at
            row.finished_at = record.finished_at
            row.train_seconds = record.train_seconds
            row.score_seconds = record.score_seconds
            session.merge(row)

        self._writing(put)
        return record

    def list_rounds(self, run_id: int) -> list[RoundRecord]:
        with self._reading() as session:
            self._run(session, run_id)
            return [
                RoundRecord(
                    r.run_id, r.index, r.labelled_count, r.train_job_id, r.checkpoint_id, json.loads(r.test_metrics_json or "{}"),
                    r.agreement, r.selected_count, r.started_at, r.finished_at, r.train_seconds, r.score_seconds,
                )
                for r in session.scalars(select(Round).where(Round.run_id == run_id).order_by(Round.index))
            ]

    def add_acquisitions(self, run_id: int, round_index: int, items: Sequence[AcquisitionRecord]) -> tuple[int, int]:
        """Record selected samples. Returns (added, already_present in this round)."""
        if round_index < 0:
            raise errors.InvalidArgument("round must not be negative")
        ids = [item.sample_id for item in items]
        if len(set(ids)) != len(ids):
            raise errors.InvalidArgument("a sample appears more than once in one request")

        def add(session: Session) -> tuple[int, int]:
            run = self._run(session, run_id)
            samples = dict(
                session.execute(select(Sample.id, Sample.split).where(Sample.dataset_id == run.dataset_id, Sample.id.in_(ids))).all()
            )
            for sid in ids:
                if sid not in samples:
                    raise errors.InvalidArgument(f"sample {sid} is not in the run's dataset")
                if samples[sid] != "train":
                    raise errors.InvalidArgument(f"sample {sid} is in the {samples[sid]} split; only train samples can be acquired")
            existing = dict(
                session.execute(select(Acquisition.sample_id, Acquisition.round).where(Acquisition.run_id == run_id, Acquisition.sample_id.in_(ids))).all()
            )
            clash = {sid: r for sid, r in existing.items() if r != round_index}
            if clash:
                sid, r = next(iter(clash.items()))
                raise errors.AlreadyExists(f"sample {sid} was already acquired by run {run_id} in round {r}")
            new = [item for item in items if item.sample_id not in existing]
            if new:
                session.execute(
                    insert(Acquisition),
                    [dict(run_id=run_id, sample_id=i.sample_id, round=round_index, strategy=i.strategy, score=float(i.score)) for i in new],
                )
                if _is_human_run(run):
                    self._reuse_dataset_labels(session, run, [i.sample_id for i in new])
            return len(new), len(existing)

        return self._writing(add)

    def _reuse_dataset_labels(self, session: Session, run: Run, sample_ids: Sequence[int]) -> None:
        """Label acquired samples that a person already labelled for the dataset, so nobody is asked again."""
        given = session.execute(
            select(CurrentLabel.sample_id, CurrentLabel.label, LabelEvent.annotator)
            .join(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
            .where(CurrentLabel.scope == run_scope(0), CurrentLabel.sample_id.in_(sample_ids), LabelEvent.source == "human")
        ).all()
        by_annotator: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
        for sample_id, label, annotator in given:
            by_annotator[annotator].append((sample_id, label))
        dataset = session.get(Dataset, run.dataset_id)
        for annotator, assignments in by_annotator.items():
            self._apply_labels(session, dataset, assignments, run.id, "human", annotator, f"dataset-label:{run.id}")
        if given:
            log.info("event=dataset_labels_reused run=%d samples=%d", run.id, len(given))

    def list_acquisitions(self, run_id: int, round_index: int = -1, pending_only: bool = False) -> list[AcquisitionRecord]:
        with self._reading() as session:
            self._run(session, run_id)
            query = (
                select(Acquisition, Sample.text, CurrentLabel.label)
                .join(Sample, Sample.id == Acquisition.sample_id)
                .outerjoin(CurrentLabel, and_(CurrentLabel.sample_id == Acquisition.sample_id, CurrentLabel.scope == run_scope(run_id)))
                .where(Acquisition.run_id == run_id)
                .order_by(Acquisition.round, Acquisition.id)
            )
            if round_index >= 0:
                query = query.where(Acquisition.round == round_index)
            if pending_only:
                query = query.where(CurrentLabel.label.is_(None))
            return [
                AcquisitionRecord(a.sample_id, a.round, a.strategy, a.score, label or "", text)
                for a, text, label in session.execute(query)
            ]


def _is_human_run(run: Run) -> bool:
    try:
        return json.loads(run.config_json).get("oracle") == "ORACLE_MODE_HUMAN"
    except (ValueError, AttributeError):
        return False


def label_key(label: str) -> str:
    """What makes two label names the same class to a person: case and spacing do not count."""
    return " ".join(label.split()).casefold()


def check_not_near_duplicate(label: str, existing: Sequence[str], where: str = "") -> None:
    """Refuse ``label`` when it differs from a label of ``existing`` only in case or spaces."""
    key = label_key(label)
    for other in existing:
        if other != label and label_key(other) == key:
            prefix = f"{where}: " if where else ""
            raise errors.InvalidArgument(
                f"{prefix}label {label!r} is a near-duplicate of {other!r} (they differ only in case or spaces "
                f"and would become two classes); use one spelling"
            )


def _validate_label_set(labels: Sequence[str]) -> list[str]:
    clean: list[str] = []
    for label in labels:
        if not label or not label.strip():
            raise errors.InvalidArgument("labels must not be empty strings")
        if len(label) > MAX_LABEL_LENGTH:
            raise errors.InvalidArgument(f"label {label[:20]!r}… longer than {MAX_LABEL_LENGTH} characters")
        if label in clean:
            raise errors.InvalidArgument(f"label {label!r} given twice")
        check_not_near_duplicate(label, clean)
        if label != label.strip():
            raise errors.InvalidArgument(f"label {label!r} starts or ends with spaces; give it without them")
        clean.append(label)
    return clean
