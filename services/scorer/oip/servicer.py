"""GRPCInferenceService: thin handlers (resolve the model by name, convert with ``codec``, score
with the model cache, record statistics)."""

from __future__ import annotations

import time

from lesslabels.common import errors
from lesslabels.common.server import ServiceRegistration
from lesslabels.inference import grpc_predict_v2_pb2 as pb
from lesslabels.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from lesslabels.scorer.deadline import time_left
from lesslabels.scorer.limits import DEFAULT_MAX_INFLIGHT_MB, MiB, InFlightBudget
from lesslabels.scorer.model_cache import ModelCache, ModelSpec
from lesslabels.scorer.oip import codec
from lesslabels.scorer.oip.model_names import NAME_REQUIRED, model_versions, resolve_checkpoint
from lesslabels.scorer.statistics import InferenceStatistics, ModelStats

SERVER_NAME = "lesslabels-scorer"
SERVER_VERSION = "1"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        cache: ModelCache,
        *,
        max_texts: int,
        ready=lambda: True,
        statistics: InferenceStatistics | None = None,
        in_flight: InFlightBudget | None = None,
    ):
        self.cache = cache
        self.max_texts = max_texts
        self.in_flight = in_flight or InFlightBudget(DEFAULT_MAX_INFLIGHT_MB * MiB)
        self._ready = ready
        self.statistics = statistics or InferenceStatistics()

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=bool(self._ready()))

    def ModelReady(self, request, context):
        # From the manifests: a probe must not load (or evict) models. An unknown name or version
        # is simply not ready (probes want a boolean).
        if not request.name:
            raise errors.InvalidArgument(NAME_REQUIRED)
        try:
            checkpoint = resolve_checkpoint(self.cache, request.name, request.version)
        except (errors.NotFound, errors.InvalidArgument, errors.FailedPrecondition):
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=bool(checkpoint.labels))

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])

    def ModelMetadata(self, request, context):
        checkpoint = resolve_checkpoint(self.cache, request.name, request.version)
        versions = model_versions(self.cache, request.name, checkpoint)
        return codec.model_metadata(request.name, versions, checkpoint, self.cache.runtime_of(checkpoint))

    def ModelConfig(self, request, context):
        checkpoint = resolve_checkpoint(self.cache, request.name, request.version)
        return pb.ModelConfigResponse(
            config=codec.model_config(request.name, checkpoint, self.cache.runtime_of(checkpoint))
        )

    def ModelStatistics(self, request, context):
        if not request.name:
            if request.version:
                raise errors.InvalidArgument("a version needs a model name")
            found = self.statistics.snapshot()
        else:
            checkpoint = resolve_checkpoint(self.cache, request.name, request.version)
            version = checkpoint.id if request.version else ""
            found = self.statistics.snapshot(request.name, version) or [ModelStats(request.name, checkpoint.id)]
        return pb.ModelStatisticsResponse(model_stats=[codec.model_statistics_to_proto(s) for s in found])

    def ModelInfer(self, request, context):
        started = time.perf_counter_ns()
        checkpoint = resolve_checkpoint(self.cache, request.model_name, request.model_version)
        try:
            with self.in_flight.hold(codec.request_bytes(request)):
                codec.check_request_parameters(request)
                texts = codec.texts_from_request(request, self.max_texts)
                outputs = codec.requested_outputs(request)
                if not checkpoint.labels:
                    raise errors.InvalidArgument(f"model {errors.quote(request.model_name)} has no classification head")
                scoring = time.perf_counter_ns()
                scores = self.cache.score(ModelSpec(checkpoint_id=checkpoint.id), texts, timeout=time_left(context))
                infer_ns = time.perf_counter_ns() - scoring
                response = codec.infer_response(request, outputs, scores)
        except Exception:
            self.statistics.record_failure(request.model_name, checkpoint.id, total_ns=time.perf_counter_ns() - started)
            raise
        self.statistics.record_success(
            request.model_name,
            checkpoint.id,
            texts=len(texts),
            total_ns=time.perf_counter_ns() - started,
            infer_ns=infer_ns,
        )
        return response


def registration(servicer: InferenceServicer) -> ServiceRegistration:
    name = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
    # Liveness and readiness are probes, answered without the bearer token like grpc.health.v1.
    probes = tuple(f"/{name}/{method}" for method in ("ServerLive", "ServerReady"))
    return ServiceRegistration(
        names=(name,),
        register=lambda server: pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server),
        open_methods=probes,
    )
