"""Runs: create, read, list and update runs (the compare-and-set on step and round), their round
records and the samples they acquire. ``store_round`` and ``store_acquisitions`` are the one place
those rows are written, by ``PoolStore`` and by a recorded step (steps.py) alike."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from sqlalchemy import and_, insert, select
from sqlalchemy.orm import Session

from lesslabels.common import errors
from lesslabels.common.errors import quote
from lesslabels.common.timeutil import utcnow
from lesslabels.contract.vocabulary import ACTIVE_RUN_STATES, FINAL_RUN_STATES, RUN_STATES, RUN_STEPS
from lesslabels.pool import counts
from lesslabels.pool.base import StorePart, find_dataset, find_run
from lesslabels.pool.labels import reuse_dataset_labels
from lesslabels.pool.tables import REQUEST_ID_MAX, Acquisition, CurrentLabel, Dataset, Round, Run, Sample, run_scope
from lesslabels.contract import wire
from lesslabels.pool.records import AcquisitionRecord, RoundRecord, RunRecord

#: Longest training job id and checkpoint id a round records (the columns hold 128 characters).
ROUND_ID_MAX = 128


class RunsPart(StorePart):
    """The run operations of ``PoolStore``."""

    def _run_record(self, session: Session, run: Run) -> RunRecord:
        """The record of ``run``; one whose stored configuration fails the checks (``RunConfig.validate``)
        comes back FAILED with the reason and a configuration naming only its dataset (see
        ``_fail_bad_configs``, which records that)."""
        dataset = session.get_one(Dataset, run.dataset_id)
        config_json, state, error = run.config_json, run.state, run.error
        problem = bad_config(config_json, dataset.name)
        if problem or state not in RUN_STATES or run.step not in RUN_STEPS:
            config_json = json.dumps({"dataset": dataset.name})
            state, error = "FAILED", problem or f"stored run state {quote(state)} / step {quote(run.step)} is unknown"
        step = run.step if run.step in RUN_STEPS else "SEED"
        labelled = counts.labelled_total(session, run.dataset_id, run_scope(run.id))
        pool = counts.sample_total(session, run.dataset_id, ["train"])
        return RunRecord(
            run.id,
            dataset.name,
            config_json,
            state,
            step,
            run.round,
            error,
            run.stop_reason,
            run.created_at,
            run.updated_at,
            labelled,
            pool,
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

    def _fail_bad_configs(self, run_id: int = 0) -> None:
        """Mark FAILED, with the reason, each active run (or run ``run_id``) whose stored
        configuration fails the checks, so that no coordinator picks it up."""
        query = (
            select(Run.id, Run.config_json, Dataset.name)
            .join(Dataset, Dataset.id == Run.dataset_id)
            .where(Run.state.in_(ACTIVE_RUN_STATES))
        )
        if run_id:
            query = query.where(Run.id == run_id)
        with self._reading() as session:
            bad = [(i, problem) for i, text, name in session.execute(query) if (problem := bad_config(text, name))]
        for i, problem in bad:

            def mark(session: Session, i: int = i, problem: str = problem) -> None:
                run = session.get_one(Run, i)
                run.state, run.error, run.updated_at = "FAILED", problem, utcnow()

            self._writing(mark)

    def get_run(self, run_id: int) -> RunRecord:
        self._fail_bad_configs(run_id)
        with self._reading() as session:
            return self._run_record(session, find_run(session, run_id))

    def list_runs(self, dataset_name: str = "", states: Iterable[str] = ()) -> list[RunRecord]:
        states = list(states)
        self._fail_bad_configs()
        with self._reading() as session:
            query = select(Run).order_by(Run.id)
            if dataset_name:
                query = query.where(Run.dataset_id == find_dataset(session, dataset_name).id)
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

    def put_round(self, record: RoundRecord) -> RoundRecord:
        if record.index < 0:
            raise errors.InvalidArgument("round index must not be negative")

        def put(session: Session) -> None:
            find_run(session, record.run_id)
            store_round(session, record)

        self._writing(put)
        return record

    def list_rounds(self, run_id: int) -> list[RoundRecord]:
        with self._reading() as session:
            find_run(session, run_id)
            return [
                RoundRecord(
                    r.run_id,
                    r.index,
                    r.labelled_count,
                    r.train_job_id,
                    r.checkpoint_id,
                    json.loads(r.test_metrics_json or "{}"),
                    r.agreement,
                    r.selected_count,
                    r.started_at,
                    r.finished_at,
                    r.train_seconds,
                    r.score_seconds,
                    json.loads(r.validation_metrics_json or "{}"),
                )
                for r in session.scalars(select(Round).where(Round.run_id == run_id).order_by(Round.index))
            ]

    def list_acquisitions(
        self, run_id: int, round_index: int = -1, pending_only: bool = False
    ) -> list[AcquisitionRecord]:
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
            return [
                AcquisitionRecord(a.sample_id, a.round, a.strategy, a.score, label or "", text)
                for a, text, label in session.execute(query)
            ]


def bad_config(config_json: str, dataset: str) -> str:
    """Why the stored configuration ``config_json`` of a run of ``dataset`` is unusable, or "" when it
    passes the checks (the run's row names its dataset, so a configuration without one is not refused)."""
    try:
        wire.run_config_from_json(config_json, dataset=dataset)
    except errors.InvalidArgument as exc:
        return f"stored configuration refused: {exc}"
    return ""


def store_round(session: Session, record: RoundRecord) -> None:
    """Write a round record (insert or replace), inside the caller's transaction. The run must exist."""
    for name in ("train_job_id", "checkpoint_id"):
        if len(getattr(record, name)) > ROUND_ID_MAX:
            raise errors.InvalidArgument(
                f"round {name} is {len(getattr(record, name))} characters; at most {ROUND_ID_MAX}"
            )
    row = session.get(Round, (record.run_id, record.index)) or Round(run_id=record.run_id, index=record.index)
    row.labelled_count = record.labelled_count
    row.train_job_id = record.train_job_id
    row.checkpoint_id = record.checkpoint_id
    row.test_metrics_json = json.dumps(record.test_metrics)
    row.validation_metrics_json = json.dumps(record.validation_metrics)
    row.agreement = record.agreement
    row.selected_count = record.selected_count
    row.started_at = record.started_at
    row.finished_at = record.finished_at
    row.train_seconds = record.train_seconds
    row.score_seconds = record.score_seconds
    session.merge(row)


def store_acquisitions(
    session: Session, run: Run, round_index: int, items: Sequence[AcquisitionRecord]
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
