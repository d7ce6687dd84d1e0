"""RunStore, the pool process's internal API (runs, rounds, recorded steps and the acquisitions they
store): validate, convert, call the core, convert back. Served beside ``PoolService`` on the same
store; every method takes only the internal token when the server has one (``registration``).

A run's configuration is checked once on its way in (CreateRun; the coordinator validated it at
StartRun) and stored as JSON. The core keeps that text; this layer reads it (``_run_to_proto``) and,
where runs are picked up (GetRun, ListRuns), has the core mark FAILED an active run whose stored
configuration no longer passes (``config_problem``): a row written by other means, or by an older
version whose bounds were looser."""

from __future__ import annotations

from lesslabels.common.errors import InvalidArgument
from lesslabels.contract import Acquisition, RunConfig, wire
from lesslabels.pool import steps
from lesslabels.pool.records import StoredRun
from lesslabels.pool.store import PoolStore
from lesslabels.v1 import run_pb2, run_store_pb2, run_store_pb2_grpc


def config_problem(config_json: str, dataset: str) -> str:
    """Why the stored configuration of a run of ``dataset`` is unusable, or "" when it passes the checks
    (the run's row names its dataset, so a configuration without one is not refused)."""
    try:
        wire.run_config_from_json(config_json, dataset=dataset)
    except InvalidArgument as exc:
        return f"stored configuration refused: {exc}"
    return ""


def _run_to_proto(run: StoredRun) -> run_pb2.Run:
    """The run, with its stored configuration as read back; one that cannot be read (a run marked FAILED
    for it by ``config_problem``) names only its dataset."""
    try:
        config = wire.run_config_from_json(run.config_json, dataset=run.dataset, validate=False)
    except InvalidArgument:
        config = RunConfig(dataset=run.dataset)
    return wire.run_to_proto(run.as_run(config))


def _acquisitions_from_proto(messages) -> list[Acquisition]:
    """Acquisitions to store: their strategy must be one the system knows (unset = none named)."""
    for message in messages:
        wire.enum_name(wire.STRATEGY_TO_CORE, message.strategy, f"acquisition of sample {message.sample_id}: strategy")
    return [wire.acquisition_from_proto(m) for m in messages]


def _name(mapping, value: int, what: str) -> str | None:
    """A proto enum value as its core name; None when unset (UNSPECIFIED = unchanged)."""
    return wire.enum_name(mapping, value, what) or None


class RunStoreServicer(run_store_pb2_grpc.RunStoreServicer):
    def __init__(self, store: PoolStore):
        self.store = store

    def CreateRun(self, request, context):
        config = wire.run_config_from_proto(request.config).validate()
        record = self.store.create_run(config.dataset, wire.run_config_to_json(config), request.request_id)
        return _run_to_proto(record)

    def GetRun(self, request, context):
        self.store.fail_bad_configs(config_problem, request.run_id)
        return _run_to_proto(self.store.get_run(request.run_id))

    def ListRuns(self, request, context):
        states = wire.run_states_from_proto(request.states)
        self.store.fail_bad_configs(config_problem)
        return run_pb2.ListRunsResponse(runs=[_run_to_proto(r) for r in self.store.list_runs(request.dataset, states)])

    def UpdateRun(self, request, context):
        record = self.store.update_run(
            request.run_id,
            state=_name(wire.RUN_STATE_TO_CORE, request.state, "run state"),
            step=_name(wire.RUN_STEP_TO_CORE, request.step, "run step"),
            round=request.round if request.step or request.round else None,
            error=request.error if request.state else None,
            stop_reason=request.stop_reason or None,
            expected_step=_name(wire.RUN_STEP_TO_CORE, request.expected_step, "run step"),
            expected_round=request.expected_round if request.expected_step else None,
        )
        return _run_to_proto(record)

    def PutRound(self, request, context):
        return wire.round_to_proto(self.store.put_round(wire.round_from_proto(request)))

    def ListRounds(self, request, context):
        return run_store_pb2.ListRoundsResponse(
            rounds=[wire.round_to_proto(r) for r in self.store.list_rounds(request.run_id)]
        )

    def ListAcquisitions(self, request, context):
        found = self.store.list_acquisitions(request.run_id, request.round, request.pending_only)
        return run_store_pb2.ListAcquisitionsResponse(acquisitions=[wire.acquisition_to_proto(a) for a in found])

    def RevealLabels(self, request, context):
        source = wire.enum_name(wire.SOURCE_TO_CORE, request.source, "label source") or "oracle"
        return wire.label_result_to_proto(self.store.reveal_labels(request.run_id, list(request.sample_ids), source))

    def RecordStep(self, request, context):
        if not request.expected_step:
            raise InvalidArgument("RecordStep: expected_step is required (the step the run must be at)")
        outcome = steps.StepOutcome(
            expected_step=wire.enum_name(wire.RUN_STEP_TO_CORE, request.expected_step, "expected_step"),
            expected_round=request.expected_round,
            round_record=wire.round_from_proto(request.round_record) if request.HasField("round_record") else None,
            acquisitions=_acquisitions_from_proto(request.acquisitions),
            acquisition_round=request.acquisition_round,
            state=_name(wire.RUN_STATE_TO_CORE, request.state, "run state"),
            step=_name(wire.RUN_STEP_TO_CORE, request.step, "run step"),
            round=request.round if request.step else None,
            stop_reason=request.stop_reason or None,
        )
        return _run_to_proto(steps.record_step(self.store, request.run_id, outcome))


def registration(servicer: RunStoreServicer):
    from lesslabels.common.server import ServiceRegistration

    return ServiceRegistration(
        names=(run_store_pb2.DESCRIPTOR.services_by_name["RunStore"].full_name,),
        register=lambda server: run_store_pb2_grpc.add_RunStoreServicer_to_server(servicer, server),
        # A run's state is the coordinator's to write: users read and change runs through the
        # coordinator's public API, so no method here takes the public token.
        internal=True,
    )
