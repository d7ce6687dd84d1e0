"""One run step's outcome, recorded in one transaction (the RecordStep RPC).

The coordinator ends every step by storing what the step produced (the round record, the samples it
selected) and moving the run to its next step with a compare-and-set on (step, round). Doing these
as separate writes leaves a window where a killed coordinator has stored half a step; here they are
one transaction: either the run advanced with everything the step produced, or nothing was written.

Knows nothing of gRPC: ``services/pool/run_servicer.py`` converts the request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy.orm import Session

from lesslabels.common import errors
from lesslabels.common.timeutil import utcnow
from lesslabels.contract.vocabulary import ACTIVE_RUN_STATES, FINAL_RUN_STATES, RUN_STATES, RUN_STEPS
from lesslabels.pool.tables import Run
from lesslabels.contract import Acquisition, Round
from lesslabels.pool.records import StoredRun
from lesslabels.pool.runs import store_acquisitions, store_round
from lesslabels.pool.store import PoolStore


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """What a step produced and where the run goes next (None / empty = unchanged, nothing)."""

    expected_step: str
    expected_round: int
    round_record: Round | None = None
    acquisitions: Sequence[Acquisition] = ()
    acquisition_round: int = 0
    state: str | None = None
    step: str | None = None
    round: int | None = None
    stop_reason: str | None = None


def validate(run_id: int, outcome: StepOutcome) -> None:
    """Raises InvalidArgument naming the first bad field."""
    if outcome.expected_step not in RUN_STEPS:
        raise errors.InvalidArgument(
            f"expected_step is required (one of {', '.join(RUN_STEPS)}), got {errors.quote(outcome.expected_step)}"
        )
    if outcome.expected_round < 0:
        raise errors.InvalidArgument("expected_round must not be negative")
    if outcome.state is not None and outcome.state not in RUN_STATES:
        raise errors.InvalidArgument(f"unknown run state {errors.quote(outcome.state)}")
    if outcome.step is not None and outcome.step not in RUN_STEPS:
        raise errors.InvalidArgument(f"unknown step {errors.quote(outcome.step)}")
    if outcome.round is not None and outcome.round < 0:
        raise errors.InvalidArgument("round must not be negative")
    record = outcome.round_record
    if record is not None:
        if record.run_id != run_id:
            raise errors.InvalidArgument(f"round_record belongs to run {record.run_id}, not run {run_id}")
        if record.index < 0:
            raise errors.InvalidArgument("round index must not be negative")
    if outcome.acquisitions:
        if outcome.acquisition_round < 0:
            raise errors.InvalidArgument("acquisition_round must not be negative")
        ids = [a.sample_id for a in outcome.acquisitions]
        if len(set(ids)) != len(ids):
            raise errors.InvalidArgument("a sample appears more than once in one request")


def record_step(store: PoolStore, run_id: int, outcome: StepOutcome) -> StoredRun:
    """Store the step's outcome and advance the run, all or nothing.

    FailedPrecondition when the run is not at ``expected_step``/``expected_round`` (checked first,
    under a row lock where the database has them), AlreadyExists for a sample the run acquired in
    another round, InvalidArgument for a sample outside the run's training pool."""
    validate(run_id, outcome)

    def write(session: Session) -> StoredRun:
        run = session.get(Run, run_id, with_for_update=True) if run_id > 0 else None
        if run is None:
            raise errors.NotFound(f"run {run_id} not found")
        if run.step != outcome.expected_step or run.round != outcome.expected_round:
            raise errors.FailedPrecondition(
                f"run {run_id} is at step {run.step} round {run.round}, "
                f"not {outcome.expected_step} round {outcome.expected_round}"
            )
        if outcome.acquisitions:
            store_acquisitions(session, run, outcome.acquisition_round, outcome.acquisitions)
        if outcome.round_record is not None:
            store_round(session, outcome.round_record)
        _advance(run, outcome)
        session.flush()
        return store._stored_run(session, run)

    return store._writing(write)


def _advance(run: Run, outcome: StepOutcome) -> None:
    if outcome.state in ACTIVE_RUN_STATES and run.state in FINAL_RUN_STATES:
        run.error, run.stop_reason = "", ""  # resumed: the old outcome no longer describes the run
    for name in ("state", "step", "round", "stop_reason"):
        value = getattr(outcome, name)
        if value is not None:
            setattr(run, name, value)
    run.updated_at = utcnow()
