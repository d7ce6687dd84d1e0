"""CoordinatorService: validate, convert, call the core, convert back."""

from __future__ import annotations

from lesslabels.common.errors import InvalidArgument
from lesslabels.common.server import ServiceRegistration
from lesslabels.contract import vocabulary, wire
from lesslabels.coordinator import convert
from lesslabels.coordinator.orchestrator import Coordinator
from lesslabels.v1 import coordinator_pb2, coordinator_pb2_grpc, run_pb2


def _run_id(value: int) -> int:
    if value <= 0:
        raise InvalidArgument(f"run_id must be positive, got {value}")
    return value


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServiceServicer):
    def __init__(self, core: Coordinator):
        self.core = core

    def StartRun(self, request, context):
        config = wire.run_config_from_proto(request.config)
        return wire.run_to_proto(self.core.start_run(config, request.request_id))

    def WatchRun(self, request, context):
        for event in self.core.watch(_run_id(request.run_id), context.is_active):
            yield wire.run_event_to_proto(event)

    def GetRun(self, request, context):
        run_id = _run_id(request.run_id)
        run, rounds = self.core.get_run(run_id)
        reply = coordinator_pb2.RunDetail(run=wire.run_to_proto(run), rounds=[wire.round_to_proto(r) for r in rounds])
        latest = self.core.latest_event(run_id)
        if latest is not None and run.state not in vocabulary.FINAL_RUN_STATES:
            reply.message = latest.message
            if latest.progress is not None and latest.run.step == run.step:
                reply.progress.CopyFrom(wire.step_progress_to_proto(latest.progress))
        return reply

    def ListRuns(self, request, context):
        runs = self.core.list_runs(request.dataset, wire.run_states_from_proto(request.states))
        return run_pb2.ListRunsResponse(runs=[wire.run_to_proto(r) for r in runs])

    def CancelRun(self, request, context):
        return wire.run_to_proto(self.core.cancel_run(_run_id(request.run_id)))

    def ResumeRun(self, request, context):
        return wire.run_to_proto(self.core.resume_run(_run_id(request.run_id)))

    def GetPendingLabels(self, request, context):
        return convert.pending_to_proto(self.core.pending_labels(_run_id(request.run_id), request.annotator))

    def SubmitRunLabels(self, request, context):
        labels = [(a.sample_id, a.label) for a in request.labels]
        result, remaining = self.core.submit_labels(
            _run_id(request.run_id), labels, annotator=request.annotator, idempotency_key=request.idempotency_key
        )
        return coordinator_pb2.SubmitRunLabelsResponse(result=wire.label_result_to_proto(result), remaining=remaining)


def registration(servicer: CoordinatorServicer) -> ServiceRegistration:
    name = coordinator_pb2.DESCRIPTOR.services_by_name["CoordinatorService"].full_name
    return ServiceRegistration(
        names=(name,),
        register=lambda server: coordinator_pb2_grpc.add_CoordinatorServiceServicer_to_server(servicer, server),
    )
