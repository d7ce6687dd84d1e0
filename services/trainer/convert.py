"""Conversion between trainer protobuf messages and domain objects. The only place both meet."""

from __future__ import annotations

from google.protobuf import json_format

from lesslabels.common import errors, vocabulary
from lesslabels.common.metrics import Metrics
from lesslabels.v1 import common_pb2, trainer_pb2
from lesslabels.trainer.engine import TrainConfig
from lesslabels.trainer.job_types import Job, JobEvent, JobState, TrainRequest

CLASS_BALANCE_FROM_PROTO = {
    common_pb2.CLASS_BALANCE_NONE: "none",
    common_pb2.CLASS_BALANCE_WEIGHTED_LOSS: "weighted_loss",
    common_pb2.CLASS_BALANCE_SAMPLING: "sampling",
}
CLASS_BALANCE_TO_PROTO = {v: k for k, v in CLASS_BALANCE_FROM_PROTO.items()}
PRECISION_FROM_PROTO = {
    common_pb2.PRECISION_AUTO: "auto",
    common_pb2.PRECISION_FP32: "fp32",
    common_pb2.PRECISION_BF16: "bf16",
    common_pb2.PRECISION_FP16: "fp16",
}
PRECISION_TO_PROTO = {v: k for k, v in PRECISION_FROM_PROTO.items()}
HEAD_INIT_FROM_PROTO = {
    common_pb2.HEAD_INIT_UNSPECIFIED: None,  # the default
    common_pb2.HEAD_INIT_PROTOTYPE: "prototype",
    common_pb2.HEAD_INIT_RANDOM: "random",
}
HEAD_INIT_TO_PROTO = {"prototype": common_pb2.HEAD_INIT_PROTOTYPE, "random": common_pb2.HEAD_INIT_RANDOM}
POOLING_FROM_PROTO = {
    common_pb2.POOLING_UNSPECIFIED: None,  # the default
    common_pb2.POOLING_MEAN: "mean",
    common_pb2.POOLING_CLS: "cls",
}
POOLING_TO_PROTO = {"mean": common_pb2.POOLING_MEAN, "cls": common_pb2.POOLING_CLS}
JOB_STATE_TO_PROTO = {JobState(name): value for name, value in vocabulary.JOB_STATE_TO_PROTO.items()}

_DEFAULTS = TrainConfig()


def config_from_proto(message: common_pb2.Hyperparameters) -> TrainConfig:
    """Zero means "default" (as documented in common.proto); anything else is kept for validation."""

    def pick(name):
        value = getattr(message, name)
        return value if value else getattr(_DEFAULTS, name)

    if message.class_balance not in CLASS_BALANCE_FROM_PROTO:
        raise errors.InvalidArgument(f"unknown class_balance {message.class_balance}")
    if message.precision not in PRECISION_FROM_PROTO:
        raise errors.InvalidArgument(f"unknown precision {message.precision}")
    if message.head_init not in HEAD_INIT_FROM_PROTO:
        raise errors.InvalidArgument(f"unknown head_init {message.head_init}")
    if message.pooling not in POOLING_FROM_PROTO:
        raise errors.InvalidArgument(f"unknown pooling {message.pooling}")
    return TrainConfig(
        learning_rate=pick("learning_rate"),
        batch_size=pick("batch_size"),
        max_epochs=pick("max_epochs"),
        patience=pick("patience"),
        warmup_ratio=pick("warmup_ratio"),
        weight_decay=pick("weight_decay"),
        max_length=pick("max_length"),
        validation_fraction=pick("validation_fraction"),
        use_labelled_validation=message.use_labelled_validation,
        class_balance=CLASS_BALANCE_FROM_PROTO[message.class_balance],
        precision=PRECISION_FROM_PROTO[message.precision],
        num_threads=message.num_threads,
        max_steps=message.max_steps,
        min_steps=message.min_steps,
        min_steps_per_class=pick("min_steps_per_class"),
        head_init=HEAD_INIT_FROM_PROTO[message.head_init] or _DEFAULTS.head_init,
        holdout_min_per_class=pick("holdout_min_per_class"),
        pooling=POOLING_FROM_PROTO[message.pooling] or _DEFAULTS.pooling,
    )


def config_to_proto(config: TrainConfig) -> common_pb2.Hyperparameters:
    return common_pb2.Hyperparameters(
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        max_epochs=config.max_epochs,
        patience=config.patience,
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_length=config.max_length,
        validation_fraction=config.validation_fraction,
        use_labelled_validation=config.use_labelled_validation,
        class_balance=CLASS_BALANCE_TO_PROTO[config.class_balance],
        precision=PRECISION_TO_PROTO[config.precision],
        num_threads=config.num_threads,
        max_steps=config.max_steps,
        min_steps=config.min_steps,
        min_steps_per_class=config.min_steps_per_class,
        head_init=HEAD_INIT_TO_PROTO[config.head_init],
        holdout_min_per_class=config.holdout_min_per_class,
        pooling=POOLING_TO_PROTO[config.pooling],
    )


def request_from_proto(message: trainer_pb2.StartTrainingRequest) -> TrainRequest:
    return TrainRequest(
        dataset=message.dataset,
        run_id=message.run_id,
        round=message.round,
        base_model=message.base_model,
        config=config_from_proto(message.hyperparameters),
        seed=message.seed,
        warm_start_checkpoint=message.warm_start_checkpoint,
        labels=tuple(message.labels),
        request_id=message.request_id,
    )


def request_to_proto(request: TrainRequest) -> trainer_pb2.StartTrainingRequest:
    return trainer_pb2.StartTrainingRequest(
        dataset=request.dataset,
        run_id=request.run_id,
        round=request.round,
        base_model=request.base_model,
        hyperparameters=config_to_proto(request.config),
        seed=request.seed,
        warm_start_checkpoint=request.warm_start_checkpoint,
        labels=list(request.labels),
        request_id=request.request_id,
    )


def metrics_to_proto(metrics: Metrics | None) -> common_pb2.EvalMetrics | None:
    if metrics is None:
        return None
    return common_pb2.EvalMetrics(
        accuracy=metrics.accuracy,
        macro_f1=metrics.macro_f1,
        per_class_f1=metrics.per_class_f1,
        count=metrics.count,
        loss=metrics.loss,
    )


def job_to_proto(job: Job) -> trainer_pb2.TrainJob:
    return trainer_pb2.TrainJob(
        id=job.id,
        state=JOB_STATE_TO_PROTO[job.state],
        queue_position=job.queue_position,
        request=request_to_proto(job.request),
        checkpoint_id=job.checkpoint_id,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        validation=metrics_to_proto(job.validation),
        device=job.device,
    )


def event_to_proto(event: JobEvent) -> trainer_pb2.TrainProgress:
    return trainer_pb2.TrainProgress(
        job_id=event.job_id,
        state=JOB_STATE_TO_PROTO[event.state],
        epoch=event.epoch,
        step=event.step,
        total_steps=event.total_steps,
        loss=event.loss,
        validation=metrics_to_proto(event.validation),
        samples_per_second=event.samples_per_second,
        eta_seconds=event.eta_seconds,
        message=event.message,
        checkpoint_id=event.checkpoint_id,
        queue_position=event.queue_position,
    )


def manifest_to_proto(manifest: dict) -> common_pb2.CheckpointManifest:
    """A manifest.json dict (CheckpointManifest field names, enum names) as the message."""
    return json_format.ParseDict(manifest, common_pb2.CheckpointManifest(), ignore_unknown_fields=True)
