"""Protobuf <-> coordinator domain types, with explicit enum maps. Only the edge uses this."""

from __future__ import annotations

import datetime as dt

import numpy as np
from google.protobuf import json_format

from lesslabels.common import vocabulary
from lesslabels.common.errors import InvalidArgument
from lesslabels.coordinator import model
from lesslabels.v1 import common_pb2, coordinator_pb2, pool_pb2, run_pb2, trainer_pb2

STRATEGY_TO_CORE = vocabulary.STRATEGY_TO_CORE
STRATEGY_TO_PROTO = vocabulary.STRATEGY_TO_PROTO
SEED_STRATEGY_TO_CORE = vocabulary.SEED_STRATEGY_TO_CORE
SEED_STRATEGY_TO_PROTO = vocabulary.SEED_STRATEGY_TO_PROTO
ORACLE_TO_CORE = vocabulary.ORACLE_TO_CORE
ORACLE_TO_PROTO = vocabulary.ORACLE_TO_PROTO
STATE_TO_CORE = vocabulary.RUN_STATE_TO_CORE
STATE_TO_PROTO = vocabulary.RUN_STATE_TO_PROTO
STEP_TO_CORE = vocabulary.RUN_STEP_TO_CORE
STEP_TO_PROTO = vocabulary.RUN_STEP_TO_PROTO
JOB_STATE_TO_CORE = vocabulary.JOB_STATE_TO_CORE
SPLIT_TO_PROTO = vocabulary.SPLIT_TO_PROTO
SOURCE_TO_PROTO = vocabulary.SOURCE_TO_PROTO


def enum_name(mapping: dict, value: int, what: str) -> str:
    """Proto enum value -> core name; 0 -> "" (use the default); unknown -> InvalidArgument."""
    if value == 0:
        return ""
    try:
        return mapping[value]
    except KeyError:
        raise InvalidArgument(f"unknown {what} value {value}") from None


# ---------------------------------------------------------------- run configuration


def amount_from_proto(message: run_pb2.Amount) -> model.Amount | None:
    which = message.WhichOneof("amount")
    if which is None:
        return None
    if which == "count":
        if message.count <= 0:
            raise InvalidArgument(f"amount count must be positive, got {message.count}")
        return model.Amount(count=message.count)
    return model.Amount(fraction=message.fraction)


def amount_to_proto(amount: model.Amount | None) -> run_pb2.Amount:
    if amount is None:
        return run_pb2.Amount()
    return run_pb2.Amount(count=amount.count) if amount.count else run_pb2.Amount(fraction=amount.fraction)


def run_config_from_proto(message: run_pb2.RunConfig) -> model.RunConfig:
    def amount(field: str, what: str):
        if not message.HasField(field):
            return None
        try:
            return amount_from_proto(getattr(message, field))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{what}: {exc}") from None

    stop = message.stopping
    budget = None
    if stop.HasField("label_budget"):
        try:
            budget = amount_from_proto(stop.label_budget)
        except InvalidArgument as exc:
            raise InvalidArgument(f"stopping.label_budget: {exc}") from None
    return model.RunConfig(
        dataset=message.dataset,
        name=message.name,
        base_model=message.base_model,
        strategy=enum_name(STRATEGY_TO_CORE, message.strategy, "strategy"),
        seed_size=amount("seed_size", "seed_size"),
        seed_strategy=enum_name(SEED_STRATEGY_TO_CORE, message.seed_strategy, "seed strategy"),
        batch_size=amount("batch_size", "batch_size"),
        stopping=model.StoppingRule(
            label_budget=budget,
            max_rounds=stop.max_rounds,
            target_accuracy=stop.target_accuracy,
            stable_agreement=stop.stable_agreement,
        ),
        oracle=enum_name(ORACLE_TO_CORE, message.oracle, "oracle mode"),
        random_seed=message.random_seed,
        hyperparameters=json_format.MessageToDict(message.hyperparameters, preserving_proto_field_name=True),
        warm_start=message.warm_start,
        candidates=message.candidates,
    )


def run_config_to_proto(config: model.RunConfig) -> run_pb2.RunConfig:
    stop = config.stopping
    message = run_pb2.RunConfig(
        dataset=config.dataset,
        name=config.name,
        base_model=config.base_model,
        strategy=STRATEGY_TO_PROTO.get(config.strategy, run_pb2.STRATEGY_UNSPECIFIED),
        seed_strategy=SEED_STRATEGY_TO_PROTO.get(config.seed_strategy, run_pb2.SEED_STRATEGY_UNSPECIFIED),
        stopping=run_pb2.StoppingRule(
            max_rounds=stop.max_rounds,
            target_accuracy=stop.target_accuracy,
            stable_agreement=stop.stable_agreement,
        ),
        oracle=ORACLE_TO_PROTO.get(config.oracle, run_pb2.ORACLE_MODE_UNSPECIFIED),
        random_seed=config.random_seed,
        hyperparameters=hyperparameters_to_proto(config.hyperparameters),
        warm_start=config.warm_start,
        candidates=config.candidates,
    )
    if config.seed_size is not None:
        message.seed_size.CopyFrom(amount_to_proto(config.seed_size))
    if config.batch_size is not None:
        message.batch_size.CopyFrom(amount_to_proto(config.batch_size))
    if stop.label_budget is not None:
        message.stopping.label_budget.CopyFrom(amount_to_proto(stop.label_budget))
    return message


def hyperparameters_to_proto(values: dict) -> common_pb2.Hyperparameters:
    return json_format.ParseDict(values or {}, common_pb2.Hyperparameters())


# ---------------------------------------------------------------- runs, rounds, metrics


def metrics_from_proto(message: common_pb2.EvalMetrics) -> model.Metrics:
    return model.Metrics(
        accuracy=message.accuracy,
        macro_f1=message.macro_f1,
        per_class_f1=dict(message.per_class_f1),
        count=message.count,
        loss=message.loss,
    )


def metrics_to_proto(metrics: model.Metrics | None) -> common_pb2.EvalMetrics:
    if metrics is None:
        return common_pb2.EvalMetrics()
    return common_pb2.EvalMetrics(
        accuracy=metrics.accuracy,
        macro_f1=metrics.macro_f1,
        per_class_f1=metrics.per_class_f1,
        count=metrics.count,
        loss=metrics.loss,
    )


def run_from_proto(message: run_pb2.Run) -> model.RunInfo:
    return model.RunInfo(
        id=message.id,
        config=run_config_from_proto(message.config),
        state=STATE_TO_CORE.get(message.state, "PENDING"),
        step=STEP_TO_CORE.get(message.step, "SEED"),
        round=message.round,
        error=message.error,
        labelled_count=message.labelled_count,
        pool_size=message.pool_size,
        stop_reason=message.stop_reason,
        created_at=message.created_at,
        updated_at=message.updated_at,
    )


def run_to_proto(run: model.RunInfo) -> run_pb2.Run:
    return run_pb2.Run(
        id=run.id,
        config=run_config_to_proto(run.config),
        state=STATE_TO_PROTO[run.state],
        step=STEP_TO_PROTO[run.step],
        round=run.round,
        error=run.error,
        created_at=run.created_at,
        updated_at=run.updated_at,
        labelled_count=run.labelled_count,
        pool_size=run.pool_size,
        stop_reason=run.stop_reason,
    )


def round_from_proto(message: run_pb2.Round) -> model.RoundInfo:
    return model.RoundInfo(
        run_id=message.run_id,
        index=message.index,
        labelled_count=message.labelled_count,
        train_job_id=message.train_job_id,
        checkpoint_id=message.checkpoint_id,
        test=metrics_from_proto(message.test) if message.HasField("test") and message.test.count else None,
        agreement=message.agreement,
        selected_count=message.selected_count,
        started_at=message.started_at,
        finished_at=message.finished_at,
        train_seconds=message.train_seconds,
        score_seconds=message.score_seconds,
        validation=metrics_from_proto(message.validation) if message.validation.count else None,
    )


def round_to_proto(info: model.RoundInfo) -> run_pb2.Round:
    message = run_pb2.Round(
        run_id=info.run_id,
        index=info.index,
        labelled_count=info.labelled_count,
        train_job_id=info.train_job_id,
        checkpoint_id=info.checkpoint_id,
        agreement=info.agreement,
        selected_count=info.selected_count,
        started_at=info.started_at,
        finished_at=info.finished_at,
        train_seconds=info.train_seconds,
        score_seconds=info.score_seconds,
    )
    if info.test is not None:
        message.test.CopyFrom(metrics_to_proto(info.test))
    if info.validation is not None:
        message.validation.CopyFrom(metrics_to_proto(info.validation))
    return message


def acquisition_from_proto(message: pool_pb2.Acquisition) -> model.Acquisition:
    return model.Acquisition(
        sample_id=message.sample_id,
        round=message.round,
        strategy=STRATEGY_TO_CORE.get(message.strategy, ""),
        score=message.score,
        label=message.label,
        text=message.text,
    )


def acquisition_to_proto(item: model.Acquisition) -> pool_pb2.Acquisition:
    return pool_pb2.Acquisition(
        sample_id=item.sample_id,
        round=item.round,
        strategy=STRATEGY_TO_PROTO.get(item.strategy, run_pb2.STRATEGY_UNSPECIFIED),
        score=item.score,
        label=item.label,
        text=item.text,
    )


def label_result_from_proto(message: pool_pb2.SubmitLabelsResponse) -> model.LabelResult:
    return model.LabelResult(
        recorded=message.recorded,
        unchanged=message.unchanged,
        changed=message.changed,
        labels=tuple((a.sample_id, a.label) for a in message.labels),
    )


def label_result_to_proto(result: model.LabelResult) -> pool_pb2.SubmitLabelsResponse:
    return pool_pb2.SubmitLabelsResponse(
        recorded=result.recorded,
        unchanged=result.unchanged,
        changed=result.changed,
        labels=[pool_pb2.LabelAssignment(sample_id=i, label=label) for i, label in result.labels],
    )


def pending_to_proto(batch: model.PendingBatch) -> coordinator_pb2.PendingLabels:
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


def event_to_proto(event: model.RunEvent) -> coordinator_pb2.RunEvent:
    message = coordinator_pb2.RunEvent(
        run=run_to_proto(event.run), step_progress=event.step_progress, message=event.message
    )
    if event.round is not None:
        message.round.CopyFrom(round_to_proto(event.round))
    return message


# ---------------------------------------------------------------- trainer and scorer


def train_request_to_proto(request: model.TrainRequest) -> trainer_pb2.StartTrainingRequest:
    return trainer_pb2.StartTrainingRequest(
        dataset=request.dataset,
        run_id=request.run_id,
        round=request.round,
        base_model=request.base_model,
        hyperparameters=hyperparameters_to_proto(request.hyperparameters),
        seed=request.seed,
        warm_start_checkpoint=request.warm_start_checkpoint,
        request_id=request.request_id,
    )


def job_from_proto(message: trainer_pb2.TrainJob) -> model.JobInfo:
    return model.JobInfo(
        id=message.id,
        state=JOB_STATE_TO_CORE.get(message.state, "QUEUED"),
        checkpoint_id=message.checkpoint_id,
        error=message.error,
        started_at=message.started_at,
        finished_at=message.finished_at,
        validation=metrics_from_proto(message.validation) if message.validation.count else None,
    )


def progress_from_proto(message: trainer_pb2.TrainProgress) -> model.TrainProgress:
    return model.TrainProgress(
        job_id=message.job_id,
        state=JOB_STATE_TO_CORE.get(message.state, "QUEUED"),
        epoch=message.epoch,
        step=message.step,
        total_steps=message.total_steps,
        message=message.message,
    )


def pool_scores_from_chunks(chunks, *, probabilities: bool, embeddings: bool) -> model.PoolScores:
    """Stack a ScorePool stream (or one chunk of it, as a one-item list) into arrays (one pass, no
    per-row Python objects kept)."""
    labels: tuple[str, ...] = ()
    ids, predicted, probs, embs, gold = [], [], [], [], []
    entropy, margin, least_confidence, ratio = [], [], [], []
    for chunk in chunks:
        if chunk.labels:
            labels = tuple(chunk.labels)
        ids.extend(chunk.sample_ids)
        gold.extend(chunk.gold_labels)
        for score in chunk.scores:
            predicted.append(score.predicted_label)
            entropy.append(score.entropy)
            margin.append(score.margin)
            least_confidence.append(score.least_confidence)
            ratio.append(score.ratio)
            if probabilities:
                probs.append(np.asarray(score.probabilities, dtype=np.float64))
            if embeddings:
                embs.append(np.asarray(score.embedding, dtype=np.float32))
    n = len(ids)
    return model.PoolScores(
        labels=labels,
        sample_ids=np.asarray(ids, dtype=np.int64),
        predicted=np.asarray(predicted, dtype=object),
        probabilities=np.stack(probs)
        if probabilities and n
        else (np.zeros((0, len(labels))) if probabilities else None),
        embeddings=np.stack(embs) if embeddings and n else None,
        gold=np.asarray(gold, dtype=object) if gold else None,
        uncertainty=model.Uncertainty(
            entropy=np.asarray(entropy, dtype=np.float64),
            margin=np.asarray(margin, dtype=np.float64),
            least_confidence=np.asarray(least_confidence, dtype=np.float64),
            ratio=np.asarray(ratio, dtype=np.float64),
        ),
    )


def parse_time(value: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
