"""Protobuf <-> the coordinator's own views (pending batches, training jobs). The shared types'
codecs are ``lesslabels.contract.wire``."""

from __future__ import annotations

from lesslabels import contract
from lesslabels.contract import wire
from lesslabels.coordinator import domain
from lesslabels.v1 import coordinator_pb2, trainer_pb2


def pending_to_proto(batch: contract.PendingBatch) -> coordinator_pb2.PendingLabels:
    return coordinator_pb2.PendingLabels(
        run_id=batch.run_id,
        round=batch.round,
        labels=list(batch.labels),
        remaining=batch.remaining,
        samples=[
            coordinator_pb2.PendingSample(sample_id=s.sample_id, text=s.text, score=s.score, label=s.label)
            for s in batch.samples
        ],
    )


def job_from_proto(message: trainer_pb2.TrainJob) -> domain.JobInfo:
    return domain.JobInfo(
        id=message.id,
        state=wire.JOB_STATE_TO_CORE.get(message.state, "QUEUED"),
        checkpoint_id=message.checkpoint_id,
        error=message.error,
        started_at=message.started_at,
        finished_at=message.finished_at,
        validation=wire.metrics_from_proto(message.validation) if message.validation.count else None,
        comparison=wire.comparison_from_proto(message.comparison),
    )


def progress_from_proto(message: trainer_pb2.TrainProgress) -> domain.TrainProgress:
    return domain.TrainProgress(
        job_id=message.job_id,
        state=wire.JOB_STATE_TO_CORE.get(message.state, "QUEUED"),
        epoch=message.epoch,
        step=message.step,
        total_steps=message.total_steps,
        message=message.message,
        samples_per_second=message.samples_per_second,
        eta_seconds=message.eta_seconds,
    )
