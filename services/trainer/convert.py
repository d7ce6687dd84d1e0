"""Protobuf <-> the trainer's jobs and events. The shared types' codecs (requests, hyperparameters)
are ``lesslabels.contract.wire``."""

from __future__ import annotations

from google.protobuf import json_format

from lesslabels.contract import wire
from lesslabels.v1 import common_pb2, trainer_pb2
from lesslabels.trainer.job_types import Job, JobEvent, JobState

JOB_STATE_TO_PROTO = {JobState(name): value for name, value in wire.JOB_STATE_TO_PROTO.items()}


def job_to_proto(job: Job) -> trainer_pb2.TrainJob:
    return trainer_pb2.TrainJob(
        id=job.id,
        state=JOB_STATE_TO_PROTO[job.state],
        queue_position=job.queue_position,
        request=wire.train_request_to_proto(job.request),
        checkpoint_id=job.checkpoint_id,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        validation=wire.metrics_to_proto(job.validation) if job.validation else None,
        device=job.device,
        comparison=wire.comparison_to_proto(job.comparison) if job.comparison else None,
    )


def event_to_proto(event: JobEvent) -> trainer_pb2.TrainProgress:
    return trainer_pb2.TrainProgress(
        job_id=event.job_id,
        state=JOB_STATE_TO_PROTO[event.state],
        epoch=event.epoch,
        step=event.step,
        total_steps=event.total_steps,
        loss=event.loss,
        validation=wire.metrics_to_proto(event.validation) if event.validation else None,
        samples_per_second=event.samples_per_second,
        eta_seconds=event.eta_seconds,
        message=event.message,
        checkpoint_id=event.checkpoint_id,
        queue_position=event.queue_position,
    )


def manifest_to_proto(manifest: dict) -> common_pb2.CheckpointManifest:
    """A manifest.json dict (CheckpointManifest field names, enum names) as the message."""
    return json_format.ParseDict(manifest, common_pb2.CheckpointManifest(), ignore_unknown_fields=True)
