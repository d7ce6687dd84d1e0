"""Seeding a run's acquisitions in the pool tests the way the coordinator stores them: RecordStep."""

from __future__ import annotations

from collections.abc import Iterable

from lesslabels.v1 import run_pb2, run_store_pb2


def acquire(stub, run_id: int, round_: int, acquisitions: Iterable[run_pb2.Acquisition]) -> run_pb2.Run:
    """Store ``acquisitions`` as run ``run_id``'s selection in round ``round_`` with a RecordStep that
    leaves the run at its step and round."""
    run = stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)
    request = run_store_pb2.RecordStepRequest(
        run_id=run_id,
        expected_step=run.step,
        expected_round=run.round,
        acquisitions=list(acquisitions),
        acquisition_round=round_,
    )
    return stub.RecordStep(request, timeout=5)
