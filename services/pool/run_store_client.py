"""``RunStoreClient``: the one client of the run store, the internal service of the pool process.

The coordinator keeps a run's state here (runs, rounds, acquisitions, recorded steps) and the trainer
reads a run. It is not part of the public SDK (``lesslabels.client``): users read and change runs
through the coordinator. On a pool with an internal token every call needs that token; the public
one gets ``PermissionDenied``. Built on the SDK's ``ServiceClient`` for the channel, deadlines,
retries and errors; results are the contract types (``lesslabels.contract``). Imports no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lesslabels import contract
from lesslabels.client.base import ServiceClient
from lesslabels.contract.wire import proto_value as _choice
from lesslabels.contract import wire
from lesslabels.v1 import run_pb2, run_store_pb2, run_store_pb2_grpc


def _state(name: str) -> Any:
    return _choice(name, wire.RUN_STATE_TO_PROTO, "run state") if name else run_pb2.RUN_STATE_UNSPECIFIED


def _step(name: str) -> Any:
    return _choice(name, wire.RUN_STEP_TO_PROTO, "run step") if name else run_pb2.RUN_STEP_UNSPECIFIED


class RunStoreClient(ServiceClient):
    """Client of the run store (the pool's address, default port 50051).

    >>> with RunStoreClient("localhost:50051", token=internal_token) as runs:
    ...     runs.get_run(1).state
    """

    service = "run store"

    def __init__(self, address: str, **kwargs):
        super().__init__(address, **kwargs)
        self._stub = run_store_pb2_grpc.RunStoreStub(self._channel)

    def create_run(
        self, config: contract.RunConfig, request_id: str = "", *, timeout: float | None = None
    ) -> contract.Run:
        """A new PENDING run; with a ``request_id`` seen before, the run created with it."""
        request = run_store_pb2.CreateRunRequest(config=wire.run_config_to_proto(config), request_id=request_id)
        return wire.run_from_proto(self._unary(self._stub.CreateRun, request, "create run", timeout))

    def get_run(self, run_id: int, *, timeout: float | None = None) -> contract.Run:
        return wire.run_from_proto(
            self._unary(self._stub.GetRun, run_pb2.GetRunRequest(run_id=run_id), f"run {run_id}", timeout)
        )

    def list_runs(
        self, dataset: str = "", states: Sequence[str] = (), *, timeout: float | None = None
    ) -> list[contract.Run]:
        """Runs, optionally of one dataset and in the given states ("RUNNING", "COMPLETED", ...)."""
        request = run_pb2.ListRunsRequest(
            dataset=dataset, states=[_choice(s, wire.RUN_STATE_TO_PROTO, "run state") for s in states]
        )
        return [wire.run_from_proto(r) for r in self._unary(self._stub.ListRuns, request, "list runs", timeout).runs]

    def update_run(
        self,
        run_id: int,
        *,
        state: str = "",
        step: str = "",
        round: int | None = None,
        error: str = "",
        stop_reason: str = "",
        expected_step: str = "",
        expected_round: int = 0,
        timeout: float | None = None,
    ) -> contract.Run:
        """Advance a run; with ``expected_step``/``expected_round`` only if it is still there (else
        FailedPrecondition)."""
        request = run_store_pb2.UpdateRunRequest(
            run_id=run_id,
            state=_state(state),
            step=_step(step),
            round=round or 0,
            error=error,
            stop_reason=stop_reason,
            expected_step=_step(expected_step),
            expected_round=expected_round,
        )
        return wire.run_from_proto(self._unary(self._stub.UpdateRun, request, f"update run {run_id}", timeout))

    def record_step(
        self,
        run_id: int,
        *,
        expected_step: str,
        expected_round: int,
        step: str = "",
        round: int | None = None,
        state: str = "",
        stop_reason: str = "",
        round_info: contract.Round | None = None,
        acquisitions: Sequence[contract.Acquisition] = (),
        acquisition_round: int = 0,
        timeout: float | None = None,
    ) -> contract.Run:
        """Store a step's outcome (round record, acquisitions) and advance the run, in one transaction,
        only if the run is still at ``expected_step``/``expected_round`` (else FailedPrecondition and
        nothing is written)."""
        request = run_store_pb2.RecordStepRequest(
            run_id=run_id,
            expected_step=_choice(expected_step, wire.RUN_STEP_TO_PROTO, "run step"),
            expected_round=expected_round,
            round_record=wire.round_to_proto(round_info) if round_info is not None else None,
            acquisitions=[wire.acquisition_to_proto(a) for a in acquisitions],
            acquisition_round=acquisition_round,
            state=_state(state),
            step=_step(step),
            round=expected_round if round is None else round,
            stop_reason=stop_reason,
        )
        reply = self._unary(self._stub.RecordStep, request, f"record step {expected_step} of run {run_id}", timeout)
        return wire.run_from_proto(reply)

    def put_round(self, info: contract.Round, *, timeout: float | None = None) -> contract.Round:
        """Create or replace round ``info.index`` of run ``info.run_id``."""
        reply = self._unary(
            self._stub.PutRound, wire.round_to_proto(info), f"round {info.index} of run {info.run_id}", timeout
        )
        return wire.round_from_proto(reply)

    def list_rounds(self, run_id: int, *, timeout: float | None = None) -> list[contract.Round]:
        reply = self._unary(
            self._stub.ListRounds, run_store_pb2.ListRoundsRequest(run_id=run_id), f"rounds of run {run_id}", timeout
        )
        return [wire.round_from_proto(r) for r in reply.rounds]

    def list_acquisitions(
        self, run_id: int, round_index: int = -1, pending_only: bool = False, *, timeout: float | None = None
    ) -> list[contract.Acquisition]:
        """The samples the run acquired (``round_index`` -1: in every round), oldest first."""
        request = run_store_pb2.ListAcquisitionsRequest(run_id=run_id, round=round_index, pending_only=pending_only)
        reply = self._unary(self._stub.ListAcquisitions, request, f"acquisitions of run {run_id}", timeout)
        return [wire.acquisition_from_proto(a) for a in reply.acquisitions]

    def reveal_labels(
        self, run_id: int, sample_ids: Sequence[int], source: str = "oracle", *, timeout: float | None = None
    ) -> contract.LabelResult:
        """The simulated oracle: record the gold labels of ``sample_ids`` as the run's labels."""
        request = run_store_pb2.RevealLabelsRequest(
            run_id=run_id, sample_ids=list(sample_ids), source=_choice(source, wire.SOURCE_TO_PROTO, "label source")
        )
        reply = self._unary(self._stub.RevealLabels, request, f"reveal labels for run {run_id}", timeout)
        return wire.label_result_from_proto(reply)
