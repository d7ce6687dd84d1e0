"""RunStore, the pool process's internal API (runs, rounds, recorded steps and the acquisitions they store): validate,
convert, call the core, convert back. Served beside ``PoolService`` on the same store; every method
takes only the internal token when the server has one (``registration``)."""

from __future__ import annotations

from lesslabels.common.errors import InvalidArgument
from lesslabels.contract import wire
from lesslabels.pool import convert, steps
from lesslabels.pool.store import PoolStore
from lesslabels.v1 import run_pb2, run_store_pb2, run_store_pb2_grpc


class RunStoreServicer(run_store_pb2_grpc.RunStoreServicer):
    def __init__(self, store: PoolStore):
        self.store = store

    def CreateRun(self, request, context):
        config = wire.run_config_from_proto(request.config).validate()
        record = self.store.create_run(config.dataset, wire.run_config_to_json(config), request.request_id)
        return convert.run_to_proto(record)

    def GetRun(self, request, context):
        return convert.run_to_proto(self.store.get_run(request.run_id))

    def ListRuns(self, request, context):
        states = wire.run_states_from_proto(request.states)
        return run_pb2.ListRunsResponse(
            runs=[convert.run_to_proto(r) for r in self.store.list_runs(request.dataset, states)]
        )

    def UpdateRun(self, request, context):
        record = self.store.update_run(
            request.run_id,
            state=convert.enum_value(wire.RUN_STATE_TO_CORE, request.state, "run state"),
            step=convert.enum_value(wire.RUN_STEP_TO_CORE, request.step, "run step"),
            round=request.round if request.step or request.round else None,
            error=request.error if request.state else None,
            stop_reason=request.stop_reason or None,
            expected_step=convert.enum_value(wire.RUN_STEP_TO_CORE, request.expected_step, "run step"),
            expected_round=request.expected_round if request.expected_step else None,
        )
        return convert.run_to_proto(record)

    def PutRound(self, request, context):
        return convert.round_to_proto(self.store.put_round(convert.round_from_proto(request)))

    def ListRounds(self, request, context):
        return run_store_pb2.ListRoundsResponse(
            rounds=[convert.round_to_proto(r) for r in self.store.list_rounds(request.run_id)]
        )

    def ListAcquisitions(self, request, context):
        records = self.store.list_acquisitions(request.run_id, request.round, request.pending_only)
        return run_store_pb2.ListAcquisitionsResponse(acquisitions=[convert.acquisition_to_proto(r) for r in records])

    def RevealLabels(self, request, context):
        source = convert.enum_value(wire.SOURCE_TO_CORE, request.source, "label source") or "oracle"
        return convert.label_result_to_proto(self.store.reveal_labels(request.run_id, list(request.sample_ids), source))

    def RecordStep(self, request, context):
        if not request.expected_step:
            raise InvalidArgument("RecordStep: expected_step is required (the step the run must be at)")
        outcome = steps.StepOutcome(
            expected_step=convert.enum_value(wire.RUN_STEP_TO_CORE, request.expected_step, "expected_step"),
            expected_round=request.expected_round,
            round_record=convert.round_from_proto(request.round_record) if request.HasField("round_record") else None,
            acquisitions=[convert.acquisition_from_proto(a) for a in request.acquisitions],
            acquisition_round=request.acquisition_round,
            state=convert.enum_value(wire.RUN_STATE_TO_CORE, request.state, "run state"),
            step=convert.enum_value(wire.RUN_STEP_TO_CORE, request.step, "run step"),
            round=request.round if request.step else None,
            stop_reason=request.stop_reason or None,
        )
        return convert.run_to_proto(steps.record_step(self.store, request.run_id, outcome))


def registration(servicer: RunStoreServicer):
    from lesslabels.common.server import ServiceRegistration

    return ServiceRegistration(
        names=(run_store_pb2.DESCRIPTOR.services_by_name["RunStore"].full_name,),
        register=lambda server: run_store_pb2_grpc.add_RunStoreServicer_to_server(servicer, server),
        # A run's state is the coordinator's to write: users read and change runs through the
        # coordinator's public API, so no method here takes the public token.
        internal=True,
    )
