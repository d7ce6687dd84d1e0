"""Labels: submit a person's or the oracle's labels, reveal gold labels to a simulated run, the label
history of a sample, and the reuse of the dataset's human labels by a human-mode run."""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lesslabels.common import errors, metrics
from lesslabels.common.plaintext import check_name
from lesslabels.contract.vocabulary import SOURCES
from lesslabels.pool import counts
from lesslabels.pool.base import StorePart, find_dataset, find_run
from lesslabels.pool.labelset import MAX_LABEL_LENGTH, check_not_near_duplicate
from lesslabels.pool.opinions import TextOpinions, label_opinions
from lesslabels.pool.tables import Acquisition, CurrentLabel, Dataset, LabelEvent, Run, Sample, run_scope
from lesslabels.contract import LabelResult
from lesslabels.pool.records import AnnotatorRecord, LabelEventRecord

log = logging.getLogger(__name__)


#: Longest annotator name (the column holds 128 characters).
MAX_ANNOTATOR_LENGTH = 128
#: Longest idempotency key: stored as "<key>:<scope>:<sample id>" in a 256-character column.
MAX_IDEMPOTENCY_KEY_LENGTH = 200


class LabelsPart(StorePart):
    """The label operations of ``PoolStore``."""

    def label_history(self, dataset_name: str, sample_id: int) -> list[LabelEventRecord]:
        """Every label given to a sample in the dataset scope, oldest first (the last is in force)."""
        with self._reading() as session:
            dataset = find_dataset(session, dataset_name)
            if session.scalar(select(Sample.id).where(Sample.id == sample_id, Sample.dataset_id == dataset.id)) is None:
                raise errors.NotFound(f"sample {sample_id} not found in dataset {errors.quote(dataset_name)}")
            return [
                LabelEventRecord(e.sample_id, e.label, e.source, e.annotator, e.created_at)
                for e in session.scalars(
                    select(LabelEvent)
                    .where(LabelEvent.sample_id == sample_id, LabelEvent.scope == run_scope(0))
                    .order_by(LabelEvent.id)
                )
            ]

    def annotators(self, dataset_name: str, run_id: int = 0) -> list[AnnotatorRecord]:
        """Who gave the labels in force in the scope (the dataset's for run 0): per annotator, how
        many and when the latest; most labels first, then by name."""
        with self._reading() as session:
            dataset = find_dataset(session, dataset_name)
            if run_id:
                find_run(session, run_id, dataset_id=dataset.id)
            labels = func.count(CurrentLabel.sample_id)
            rows = session.execute(
                select(LabelEvent.annotator, labels, func.max(LabelEvent.created_at))
                .select_from(CurrentLabel)
                .join(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
                .join(Sample, Sample.id == CurrentLabel.sample_id)
                .where(CurrentLabel.scope == run_scope(run_id), Sample.dataset_id == dataset.id)
                .group_by(LabelEvent.annotator)
                .order_by(labels.desc(), LabelEvent.annotator)
            ).all()
            return [AnnotatorRecord(name or "", n, last) for name, n, last in rows]

    def label_opinions(self, dataset_name: str, *, disputed_only: bool = False) -> list[TextOpinions]:
        """The dataset's texts two or more people labelled, and which are flagged (``opinions``)."""
        with self._reading() as session:
            dataset = find_dataset(session, dataset_name)
            return label_opinions(session, dataset.id, disputed_only=disputed_only)

    def submit_labels(
        self,
        dataset_name: str,
        assignments: Sequence[tuple[int, str]],
        *,
        run_id: int = 0,
        source: str = "human",
        annotator: str = "",
        idempotency_key: str = "",
        second_opinion: bool = False,
    ) -> LabelResult:
        """Record labels. Idempotent twice over: a key seen before changes nothing, and a label equal
        to the one in force is reported unchanged instead of adding an event.

        ``second_opinion``: each label is kept beside a label another person gave, never replacing it
        (``apply_labels``). Source "review": a reviewer's resolution, given to the dataset and in force
        in its scope and in every run scope where a person labelled the text."""
        if source not in SOURCES:
            raise errors.InvalidArgument(f"unknown label source {errors.quote(source)}")
        if second_opinion and (source != "human" or not annotator):
            raise errors.InvalidArgument("a second opinion is a person's label: it needs source human and an annotator")
        if source == "review" and (run_id or not annotator):
            raise errors.InvalidArgument(
                "a review is given to the dataset (run_id 0) by a named reviewer (annotator); "
                "it reaches every run where a person labelled the text"
            )
        if len(annotator) > MAX_ANNOTATOR_LENGTH:
            raise errors.InvalidArgument(f"annotator is {len(annotator)} characters; at most {MAX_ANNOTATOR_LENGTH}")
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise errors.InvalidArgument(
                f"idempotency_key is {len(idempotency_key)} characters; at most {MAX_IDEMPOTENCY_KEY_LENGTH}"
            )
        ids = [sid for sid, _ in assignments]
        if len(set(ids)) != len(ids):
            dup = next(sid for sid, n in collections.Counter(ids).items() if n > 1)
            raise errors.InvalidArgument(f"sample {dup} appears more than once in one submission")

        def submit(session: Session) -> LabelResult:
            dataset = find_dataset(session, dataset_name)
            if run_id:
                find_run(session, run_id, dataset_id=dataset.id)
            label_set = json.loads(dataset.labels_json)
            allowed = list(label_set)
            samples = {
                s.id: s
                for s in session.scalars(select(Sample).where(Sample.dataset_id == dataset.id, Sample.id.in_(ids)))
            }
            for index, (sample_id, label) in enumerate(assignments):
                where = f"label {index + 1} (sample {sample_id})"
                if sample_id not in samples:
                    raise errors.InvalidArgument(f"{where}: no such sample in dataset {errors.quote(dataset_name)}")
                if not label or not label.strip():
                    raise errors.InvalidArgument(f"{where}: empty label")
                check_name(label, f"{where}: label")
                if label_set and label not in label_set:
                    check_not_near_duplicate(label, label_set, where)
                    raise errors.InvalidArgument(
                        f"{where}: label {errors.quote(label)} is not in the dataset's label set {label_set}"
                    )
                if not label_set and label not in allowed:
                    # No label set yet: it is taken from the labels people give.
                    if len(label) > MAX_LABEL_LENGTH:
                        raise errors.InvalidArgument(f"{where}: label longer than {MAX_LABEL_LENGTH} characters")
                    check_not_near_duplicate(label, allowed, where)
                    allowed.append(label)
            if not label_set and allowed:
                dataset.labels_json = json.dumps(allowed)
            result = apply_labels(
                session, dataset, assignments, run_id, source, annotator, idempotency_key, second_opinion=second_opinion
            )
            if source == "review":
                _review_in_runs(session, dataset, assignments, annotator, idempotency_key)
            return result

        recorded = self._writing(submit)
        metrics.POOL_LABELS.labels(source).inc(recorded.recorded)
        return recorded

    def reveal_labels(self, run_id: int, sample_ids: Sequence[int], source: str = "oracle") -> LabelResult:
        """The simulated oracle: label samples the run acquired with their hidden gold labels."""
        if source not in ("seed", "oracle"):
            raise errors.InvalidArgument(f"reveal source must be seed or oracle, not {errors.quote(source)}")
        if len(set(sample_ids)) != len(sample_ids):
            raise errors.InvalidArgument("a sample id appears more than once")

        def reveal(session: Session) -> LabelResult:
            run = find_run(session, run_id)
            dataset = session.get(Dataset, run.dataset_id)
            acquired = set(
                session.scalars(
                    select(Acquisition.sample_id).where(
                        Acquisition.run_id == run_id, Acquisition.sample_id.in_(sample_ids)
                    )
                )
            )
            missing = [sid for sid in sample_ids if sid not in acquired]
            if missing:
                raise errors.FailedPrecondition(
                    f"run {run_id} has not acquired samples {missing[:10]}: only acquired samples can be revealed"
                )
            gold = {
                sid: g
                for sid, g in session.execute(select(Sample.id, Sample.gold_label).where(Sample.id.in_(sample_ids)))
                if g
            }
            no_gold = [sid for sid in sample_ids if sid not in gold]
            if no_gold:
                raise errors.FailedPrecondition(
                    f"samples {no_gold[:10]} have no gold label to reveal (use human labelling)"
                )
            assignments = [(sid, gold[sid]) for sid in sample_ids]
            return apply_labels(session, dataset, assignments, run_id, source, "oracle", f"reveal:{run_id}")

        revealed = self._writing(reveal)
        metrics.POOL_LABELS.labels(source).inc(revealed.recorded)
        return revealed


def apply_labels(
    session: Session,
    dataset: Dataset | None,
    assignments: Sequence[tuple[int, str]],
    run_id: int,
    source: str,
    annotator: str,
    idempotency_key: str,
    *,
    second_opinion: bool = False,
) -> LabelResult:
    """Record checked labels in the run's scope (the dataset's for run 0), inside the caller's transaction.

    ``second_opinion``: a label for a text whose label in force another person gave (or a review) is
    recorded as this annotator's own event beside it, and that label stays in force; the annotator's
    own latest label repeated adds nothing. A review replaces the label in force even when equal to
    it (the review is what clears a flagged text)."""
    scope = run_scope(run_id)
    recorded = unchanged = changed = seconds = 0
    labels: list[tuple[int, str]] = []
    # Locked (PostgreSQL; SQLite has one writer): the label replaced must be the one in force when
    # this transaction commits, or the kept counts would take back a label another writer replaced.
    # In sample order, so that two submissions lock their common samples in the same order.
    current = {
        c.sample_id: c
        for c in session.scalars(
            select(CurrentLabel)
            .where(CurrentLabel.scope == scope, CurrentLabel.sample_id.in_([a[0] for a in assignments]))
            .order_by(CurrentLabel.sample_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    in_force = _events(session, [c.event_id for c in current.values()])
    own: dict[int, str] = {}
    if second_opinion:
        for sample_id, label in session.execute(
            select(LabelEvent.sample_id, LabelEvent.label)
            .where(
                LabelEvent.scope == scope,
                LabelEvent.annotator == annotator,
                LabelEvent.sample_id.in_([a[0] for a in assignments]),
            )
            .order_by(LabelEvent.id)
        ):
            own[sample_id] = label  # the latest wins
    keys = [f"{idempotency_key}:{scope}:{sid}" if idempotency_key else None for sid, _ in assignments]
    seen_keys = set(
        session.scalars(
            select(LabelEvent.idempotency_key).where(LabelEvent.idempotency_key.in_([k for k in keys if k]))
        )
    )
    placed = {
        sid: (dataset_id, split)
        for sid, dataset_id, split in session.execute(
            select(Sample.id, Sample.dataset_id, Sample.split).where(Sample.id.in_([a[0] for a in assignments]))
        )
    }
    # (dataset, split, label) -> change in the samples labelled so in the scope.
    counted: collections.Counter[tuple[int, str, str]] = collections.Counter()
    for (sample_id, label), key in zip(assignments, keys, strict=True):
        existing = current.get(sample_id)
        by = in_force.get(existing.event_id) if existing is not None else None
        beside = second_opinion and by is not None and (by[0] != annotator or by[1] == "review")
        if beside and existing is not None:
            if key in seen_keys or own.get(sample_id) == label:
                unchanged += 1
            else:
                session.add(
                    LabelEvent(
                        sample_id=sample_id,
                        scope=scope,
                        label=label,
                        source=source,
                        annotator=annotator,
                        idempotency_key=key,
                    )
                )
                recorded += 1
                seconds += 1
            labels.append((sample_id, existing.label))
            continue
        repeat = (
            existing is not None and existing.label == label and (source != "review" or by == (annotator, "review"))
        )
        if key in seen_keys or repeat:
            unchanged += 1
            labels.append((sample_id, existing.label if existing else label))
            continue
        event = LabelEvent(
            sample_id=sample_id, scope=scope, label=label, source=source, annotator=annotator, idempotency_key=key
        )
        session.add(event)
        session.flush()
        dataset_id, split = placed[sample_id]
        if existing is None:
            session.add(CurrentLabel(sample_id=sample_id, scope=scope, label=label, event_id=event.id))
            recorded += 1
        elif existing.label == label:  # a review confirming the label in force
            existing.event_id = event.id
            recorded += 1
            labels.append((sample_id, label))
            continue
        else:
            counted[dataset_id, split, existing.label] -= 1
            existing.label, existing.event_id = label, event.id
            changed += 1
        counted[dataset_id, split, label] += 1
        labels.append((sample_id, label))
    session.flush()
    for dataset_id in sorted({d for d, _, _ in counted}):
        counts.add_labels(
            session,
            dataset_id,
            scope,
            {(split, label): n for (d, split, label), n in counted.items() if d == dataset_id},
        )
    if source == "human" and run_id:
        # A label a person gives belongs to the dataset: later human-mode runs reuse it.
        apply_labels(
            session, dataset, assignments, 0, source, annotator, idempotency_key, second_opinion=second_opinion
        )
    return LabelResult(recorded, unchanged, changed, tuple(labels), second_opinions=seconds)


def _events(session: Session, event_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Event id -> (annotator, source)."""
    if not event_ids:
        return {}
    rows = session.execute(
        select(LabelEvent.id, LabelEvent.annotator, LabelEvent.source).where(LabelEvent.id.in_(event_ids))
    )
    return {event_id: (annotator or "", source) for event_id, annotator, source in rows}


def _review_in_runs(
    session: Session, dataset: Dataset, assignments: Sequence[tuple[int, str]], reviewer: str, idempotency_key: str
) -> None:
    """A review given to the dataset reaches every run scope where a person labelled the text (the
    label in force there is a person's or an earlier review), so those runs train on it."""
    label_of = dict(assignments)
    scopes: dict[int, list[tuple[int, str]]] = collections.defaultdict(list)
    for scope, sample_id in session.execute(
        select(CurrentLabel.scope, CurrentLabel.sample_id)
        .join(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
        .where(
            CurrentLabel.sample_id.in_(list(label_of)),
            CurrentLabel.scope != run_scope(0),
            LabelEvent.source.in_(("human", "review")),
        )
        .order_by(CurrentLabel.scope, CurrentLabel.sample_id)
    ):
        scopes[int(scope.split(":", 1)[1])].append((sample_id, label_of[sample_id]))
    for run_id, pairs in scopes.items():
        apply_labels(session, dataset, pairs, run_id, "review", reviewer, idempotency_key)


def reuse_dataset_labels(session: Session, run: Run, sample_ids: Sequence[int]) -> None:
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
        apply_labels(session, dataset, assignments, run.id, "human", annotator, f"dataset-label:{run.id}")
    if given:
        log.info("event=dataset_labels_reused run=%d samples=%d", run.id, len(given))
