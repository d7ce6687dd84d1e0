"""TrainerService: validate, convert, call the core, convert back."""

from __future__ import annotations

from lesslabels.common import errors
from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.common.server import ServiceRegistration
from lesslabels.contract import wire
from lesslabels.v1 import trainer_pb2, trainer_pb2_grpc
from lesslabels.trainer import convert
from lesslabels.trainer.core import Trainer
from lesslabels.trainer.jobs import JobManager


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, trainer: Trainer, jobs: JobManager, store: CheckpointStore):
        self.trainer = trainer
        self.jobs = jobs
        self.store = store

    def StartTraining(self, request, context):
        train_request = wire.train_request_from_proto(request)
        # A retried request returns its job without being checked again (its data may have moved on).
        existing = self.jobs.find_request(train_request.request_id)
        if existing is not None:
            return convert.job_to_proto(existing)
        return convert.job_to_proto(self.jobs.submit(self.trainer.check(train_request)))

    def WatchJob(self, request, context):
        self.jobs.get(request.job_id)  # NOT_FOUND before the stream starts
        for event in self.jobs.watch(request.job_id, is_active=context.is_active):
            yield convert.event_to_proto(event)

    def CancelJob(self, request, context):
        return convert.job_to_proto(self.jobs.cancel(request.job_id))

    def GetJob(self, request, context):
        return convert.job_to_proto(self.jobs.get(request.job_id))

    def ListJobs(self, request, context):
        return trainer_pb2.ListJobsResponse(jobs=[convert.job_to_proto(j) for j in self.jobs.list(request.run_id)])

    def ListCheckpoints(self, request, context):
        checkpoints = self.store.list(request.run_id)
        return trainer_pb2.ListCheckpointsResponse(
            checkpoints=[convert.manifest_to_proto(c.manifest) for c in checkpoints]
        )

    def CheckBaseModel(self, request, context):
        if request.max_length < 0:
            raise errors.InvalidArgument(f"max_length must not be negative, got {request.max_length}")
        name = self.trainer.check_base_model(request.base_model, request.max_length)
        return trainer_pb2.CheckBaseModelResponse(name=name)

    def GetCheckpoint(self, request, context):
        which = request.WhichOneof("ref")
        if which == "checkpoint_id":
            checkpoint = self.store.get(request.checkpoint_id)
        elif which == "latest_of_run":
            checkpoint = self.store.latest(request.latest_of_run)
        else:
            raise errors.InvalidArgument("GetCheckpoint needs checkpoint_id or latest_of_run")
        return convert.manifest_to_proto(checkpoint.manifest)


#: Training jobs are the coordinator's to start and cancel: with an internal token set, the public one
#: cannot (it still watches jobs and reads checkpoints).
INTERNAL_METHODS = ("StartTraining", "CancelJob")


def registration(servicer: TrainerServicer) -> ServiceRegistration:
    name = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name
    return ServiceRegistration(
        names=(name,),
        register=lambda server: trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server),
        internal_methods=tuple(f"/{name}/{method}" for method in INTERNAL_METHODS),
    )
