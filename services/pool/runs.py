"""Runs: create, read, list and update runs (the compare-and-set on step and round), their round
records and the samples they acquire. ``store_round`` and ``store_acquisitions`` are the one place
those rows are written, by ``PoolStore`` and by a recorded step (steps.py) alike.

Rounds and acquisitions are the contract's types (times as RFC 3339 text, converted here); a run is a
``StoredRun``, whose configuration stays the stored JSON text: the core neither parses nor checks it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import and_, insert, select
from sqlalchemy.orm import Session

from lesslabels.common import errors
from lesslabels.common.errors import quote
from lesslabels.common.timeutil import rfc3339, utcnow
from lesslabels import contract
from lesslabels.contract.vocabulary import ACTIVE_RUN_STATES, FINAL_RUN_STATES, RUN_STATES, RUN_STEPS
from lesslabels.pool import counts
from lesslabels.pool.base import StorePart, find_dataset, find_run
from lesslabels.pool.labels import reuse_dataset_labels
from lesslabels.pool.tables import (
    REQUEST_ID_MAX,
    Acquisition,
    CurrentLabel,
    Dataset,
    LabelEvent,
    Round,
    Run,
    Sample,
    run_scope,
)
from lesslabels.pool.records import StoredRun

#: Longest training job id and checkpoint id a round records (the columns hold 128 characters).
ROUND_ID_MAX = 128


class RunsPart(StorePart):
    """The run operations of ``PoolStore``."""

    def _stored_run(self, session: Session, run: Run) -> StoredRun:
        """The stored run ``run``; one whose state or step is not a known name reads FAILED, naming them."""
        dataset = session.get_one(Dataset, run.dataset_id)
        state, step, error = run.state, run.step, run.error
        if state not in RUN_STATES or step not in RUN_STEPS:
            state, error = "FAILED", f"stored run state {quote(state)} / step {quote(step)} is unknown"
            step = step if step in RUN_STEPS else "SEED"
        return StoredRun(
            id=run.id,
            dataset=dataset.name,
            config_json=run.config_json,
            state=state,
            step=step,
            round=run.round,
            error=error,
            stop_reason=run.stop_reason,
            created_at=rfc3339(run.created_at),
            updated_at=rfc3339(run.updated_at),
            labelled_count=counts.labelled_total(session, run.dataset_id, run_scope(run.id)),
            pool_size=counts.sample_total(session, run.dataset_id, ["train"]),
        )

    def create_run(self, dataset_name: str, config_json: str, request_id: str = "") -> StoredRun:
        """A new PENDING run of the configuration ``config_json`` (checked by the caller); with
        ``request_id``, the run created before under that key if any."""
        if len(request_id) > REQUEST_ID_MAX:
            raise errors.InvalidArgument(f"request_id is {len(request_id)} characters; at most {REQUEST_ID_MAX}")

        def create(session: Session) -> int:
            if request_id:
                known = session.scalar(select(Run.id).where(Run.request_id == request_id))
                if known is not None:
                    return known
            dataset = find_dataset(session, dataset_name)
            run = Run(
                dataset_id=dataset.id,
                config_json=config_json,
                state="PENDING",
                step="SEED",
                round=0,
                request_id=request_id or None,
            )
            session.add(run)
            session.flush()
            return run.id

        return self.get_run(self._writing(create))

    def fail_bad_configs(self, problem: Callable[[str, str], str], run_id: int = 0) -> None:
        """Mark FAILED, with the reason, each active run (or run ``run_id``) whose stored configuration
        ``problem(config_json, dataset)`` refuses (returns why, or ""), so that no coordinator picks it
        up. The integrity check of stored rows, which the run store runs where a run is picked up:
        CreateRun stored a checked configuration, but a row may have been written by other means."""
        query = (
            select(Run.id, Run.config_json, Dataset.name)
            .join(Dataset, Dataset.id == Run.dataset_id)
            .where(Run.state.in_(ACTIVE_RUN_STATES))
        )
        if run_id:
            query = query.where(Run.id == run_id)
        with self._reading() as session:
            bad = [(i, why) for i, text, name in session.execute(query) if (why := problem(text, name))]
        for i, why in bad:

            def mark(session: Session, i: int = i, why: str = why) -> None:
                run = session.get_one(Run, i)
                run.state, run.error, run.updated_at = "FAILED", why, utcnow()

            self._writing(mark)

    def get_run(self, run_id: int) -> StoredRun:
        with self._reading() as session:
            return self._stored_run(session, find_run(session, run_id))

    def list_runs(self, dataset_name: str = "", states: Iterable[str] = ()) -> list[StoredRun]:
        states = list(states)
        with self._reading() as session:
            query = select(Run).order_by(Run.id)
            if dataset_name:
                query = query.where(Run.dataset_id == find_dataset(session, dataset_name).id)
            if states:
                query = query.where(Run.state.in_(states))
            return [self._stored_run(session, run) for run in session.scalars(query)]

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
    ) -> StoredRun:
        if state is not None and state not in RUN_STATES:
            raise errors.InvalidArgument(f"unknown run state {errors.quote(state)}")
        for name, value in (("step", step), ("expected_step", expected_step)):
            if value is not None and value not in RUN_STEPS:
                raise errors.InvalidArgument(f"unknown {name} {errors.quote(value)}")
        if round is not None and round < 0:
            raise errors.InvalidArgument("round must not be negative")

        def update(session: Session) -> None:
            run = find_run(session, run_id)
            if expected_step is not None and (
                run.step != expected_step or (expected_round is not None and run.round != expected_round)
            ):
                raise errors.FailedPrecondition(
                    f"run {run_id} is at step {run.step} round {run.round}, not {expected_step} round {expected_round}"
                )
            if state in ACTIVE_RUN_STATES and run.state in FINAL_RUN_STATES:
                # Resumed: the old outcome no longer describes the run.
                run.error, run.stop_reason = "", ""
            for name, value in (
                ("state", state),
                ("step", step),
                ("round", round),
                ("error", error),
                ("stop_reason", stop_reason),
            ):
                if value is not None:
                    setattr(run, name, value)
            run.updated_at = utcnow()

        self._writing(update)
        return self.get_run(run_id)

    def put_round(self, info: contract.Round) -> contract.Round:
        if info.index < 0:
            raise errors.InvalidArgument("round index must not be negative")

        def put(session: Session) -> None:
            find_run(session, info.run_id)
            store_round(session, info)

        self._writing(put)
        return info

    def list_rounds(self, run_id: int) -> list[contract.Round]:
        with self._reading() as session:
            find_run(session, run_id)
            return [
                contract.Round(
                    run_id=r.run_id,
                    index=r.index,
                    labelled_count=r.labelled_count,
                    train_job_id=r.train_job_id,
                    checkpoint_id=r.checkpoint_id,
                    test=_metrics_from_json(r.test_metrics_json),
                    agreement=r.agreement,
                    selected_count=r.selected_count,
                    started_at=rfc3339(r.started_at),
                    finished_at=rfc3339(r.finished_at),
                    train_seconds=r.train_seconds,
                    score_seconds=r.score_seconds,
                    validation=_metrics_from_json(r.validation_metrics_json),
                    comparison=contract.Comparison.from_dict(json.loads(r.comparison_json or "{}")),
                )
                for r in session.scalars(select(Round).where(Round.run_id == run_id).order_by(Round.index))
            ]

    def list_acquisitions(
        self, run_id: int, round_index: int = -1, pending_only: bool = False
    ) -> list[contract.Acquisition]:
        with self._reading() as session:
            find_run(session, run_id)
            query = (
                select(Acquisition, Sample.text, CurrentLabel.label)
                .join(Sample, Sample.id == Acquisition.sample_id)
                .outerjoin(
                    CurrentLabel,
                    and_(CurrentLabel.sample_id == Acquisition.sample_id, CurrentLabel.scope == run_scope(run_id)),
                )
                .where(Acquisition.run_id == run_id)
                .order_by(Acquisition.round, Acquisition.id)
            )
            if round_index >= 0:
                query = query.where(Acquisition.round == round_index)
            if pending_only:
                query = query.where(CurrentLabel.label.is_(None))
            rows = session.execute(query).all()
            opinions = {} if pending_only else _opinions(session, run_id, round_index)
            return [
                contract.Acquisition(
                    a.sample_id, a.round, a.strategy, a.score, label or "", text, opinions.get(a.sample_id, {})
                )
                for a, text, label in rows
            ]


def _opinions(session, run_id: int, round_index: int) -> dict[int, dict[str, str]]:
    """Sample -> each named person's latest label in the run's scope, for the run's acquisitions."""
    query = (
        select(LabelEvent.sample_id, LabelEvent.annotator, LabelEvent.label)
        .join(Acquisition, Acquisition.sample_id == LabelEvent.sample_id)
        .where(
            Acquisition.run_id == run_id,
            LabelEvent.scope == run_scope(run_id),
            LabelEvent.source == "human",
            LabelEvent.annotator != "",
        )
        .order_by(LabelEvent.id)
    )
    if round_index >= 0:
        query = query.where(Acquisition.round == round_index)
    found: dict[int, dict[str, str]] = {}
    for sample_id, annotator, label in session.execute(query):
        found.setdefault(sample_id, {})[annotator] = label  # the latest wins
    return found


def _metrics_from_json(text: str | None) -> contract.Metrics | None:
    """Stored metrics (the fields of ``Metrics``; rows written before held protobuf JSON, whose count is
    text); None when none were stored."""
    stored = json.loads(text or "{}")
    if not stored:
        return None
    return contract.Metrics(
        accuracy=float(stored.get("accuracy", 0.0)),
        macro_f1=float(stored.get("macro_f1", 0.0)),
        per_class_f1={k: float(v) for k, v in stored.get("per_class_f1", {}).items()},
        count=int(stored.get("count", 0)),
        loss=float(stored.get("loss", 0.0)),
    )


def _metrics_to_json(metrics: contract.Metrics | None) -> str:
    return json.dumps(metrics.as_dict() if metrics is not None else {})


def _time(info: contract.Round, name: str) -> dt.datetime | None:
    """A round's RFC 3339 time as stored ("" -> None); InvalidArgument when it is not one."""
    value = getattr(info, name)
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise errors.InvalidArgument(f"round {name} is not an RFC 3339 time: {quote(value[:40])}") from None


def store_round(session: Session, info: contract.Round) -> None:
    """Write a round record (insert or replace), inside the caller's transaction. The run must exist."""
    for name in ("train_job_id", "checkpoint_id"):
        if len(getattr(info, name)) > ROUND_ID_MAX:
            raise errors.InvalidArgument(
                f"round {name} is {len(getattr(info, name))} characters; at most {ROUND_ID_MAX}"
            )
    started, finished = _time(info, "started_at"), _time(info, "finished_at")
    row = session.get(Round, (info.run_id, info.index)) or Round(run_id=info.run_id, index=info.index)
    row.labelled_count = info.labelled_count
    row.train_job_id = info.train_job_id
    row.checkpoint_id = info.checkpoint_id
    row.test_metrics_json = _metrics_to_json(info.test)
    row.validation_metrics_json = _metrics_to_json(info.validation)
    row.comparison_json = json.dumps(info.comparison.as_dict() if info.comparison else {})
    row.agreement = info.agreement
    row.selected_count = info.selected_count
    row.started_at = started
    row.finished_at = finished
    row.train_seconds = info.train_seconds
    row.score_seconds = info.score_seconds
    session.merge(row)


def store_acquisitions(
    session: Session, run: Run, round_index: int, items: Sequence[contract.Acquisition]
) -> tuple[int, int]:
    """Record samples ``run`` selected in round ``round_index``, inside the caller's transaction; in a
    human-mode run, those a person already labelled for the dataset are labelled at once.

    Returns (added, already present in this round). InvalidArgument for a sample outside the run's
    training pool, AlreadyExists for one the run acquired in another round. The caller checks that
    ``round_index`` is not negative and that no sample is given twice."""
    ids = [item.sample_id for item in items]
    samples = dict(
        session.execute(
            select(Sample.id, Sample.split).where(Sample.dataset_id == run.dataset_id, Sample.id.in_(ids))
        ).all()
    )
    for sid in ids:
        if sid not in samples:
            raise errors.InvalidArgument(f"sample {sid} is not in the run's dataset")
        if samples[sid] != "train":
            raise errors.InvalidArgument(
                f"sample {sid} is in the {samples[sid]} split; only train samples can be acquired"
            )
    existing = dict(
        session.execute(
            select(Acquisition.sample_id, Acquisition.round).where(
                Acquisition.run_id == run.id, Acquisition.sample_id.in_(ids)
            )
        ).all()
    )
    clash = {sid: r for sid, r in existing.items() if r != round_index}
    if clash:
        sid, r = next(iter(clash.items()))
        raise errors.AlreadyExists(f"sample {sid} was already acquired by run {run.id} in round {r}")
    new = [item for item in items if item.sample_id not in existing]
    if new:
        session.execute(
            insert(Acquisition),
            [
                dict(run_id=run.id, sample_id=i.sample_id, round=round_index, strategy=i.strategy, score=float(i.score))
                for i in new
            ],
        )
        if _is_human_run(run):
            reuse_dataset_labels(session, run, [i.sample_id for i in new])
    return len(new), len(existing)


def _is_human_run(run: Run) -> bool:
    try:
        return json.loads(run.config_json).get("oracle") == "ORACLE_MODE_HUMAN"
    except (ValueError, AttributeError):
        return False
