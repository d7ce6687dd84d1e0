"""The contract on the wire: every protobuf codec of the shared types and every enum map, once.

Servicers and clients convert with these functions at the edge; cores see only the dataclasses
of ``lesslabels.contract``. UNSPECIFIED (0) is in no enum map: an unset enum reads as "" (the
default), an unknown value is InvalidArgument naming the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from google.protobuf import json_format

from lesslabels.common.best import Comparison
from lesslabels.common.errors import InvalidArgument
from lesslabels.contract.shards import Shard
from lesslabels.contract import vocabulary
from lesslabels.contract.heads import FastHead
from lesslabels.contract.hyperparameters import Hyperparameters
from lesslabels.contract.metrics import Metrics
from lesslabels.contract.run import (
    Acquisition,
    Amount,
    LabelResult,
    Round,
    Run,
    RunConfig,
    RunEvent,
    StepProgress,
    StoppingRule,
    TrainRequest,
)
from lesslabels.contract.samples import SampleQuery
from lesslabels.contract.scores import PoolScores, Uncertainty
from lesslabels.v1 import common_pb2, coordinator_pb2, pool_pb2, run_pb2, trainer_pb2


def _enum_map(enum: Any, prefix: str, names: Iterable[str]) -> dict[int, str]:
    """proto value -> core name, for core names whose enum value is PREFIX_NAME (upper case)."""
    return {enum.Value(f"{prefix}_{name.upper()}"): name for name in names}


def _inverse(mapping: Mapping) -> dict:
    return {v: k for k, v in mapping.items()}


SPLIT_TO_CORE = _enum_map(common_pb2.Split, "SPLIT", vocabulary.SPLITS)
SPLIT_TO_PROTO = _inverse(SPLIT_TO_CORE)
SOURCE_TO_CORE = _enum_map(common_pb2.LabelSource, "LABEL_SOURCE", vocabulary.SOURCES)
SOURCE_TO_PROTO = _inverse(SOURCE_TO_CORE)
LABEL_STATE_TO_CORE = _enum_map(pool_pb2.LabelState, "LABEL_STATE", vocabulary.LABEL_STATES)
LABEL_STATE_TO_PROTO = _inverse(LABEL_STATE_TO_CORE)
# "csv" is IMPORT_FORMAT_CSV_LABEL_TEXT on the wire, so this map is spelt out.
IMPORT_FORMAT_TO_CORE: dict[int, str] = {
    pool_pb2.IMPORT_FORMAT_AUTO: "auto",
    pool_pb2.IMPORT_FORMAT_CSV_LABEL_TEXT: "csv",
    pool_pb2.IMPORT_FORMAT_CSV_HEADER: "csv_header",
    pool_pb2.IMPORT_FORMAT_JSONL: "jsonl",
    pool_pb2.IMPORT_FORMAT_PARQUET: "parquet",
}
IMPORT_FORMAT_TO_PROTO = _inverse(IMPORT_FORMAT_TO_CORE)
RUN_STATE_TO_CORE = _enum_map(run_pb2.RunState, "RUN_STATE", vocabulary.RUN_STATES)
RUN_STATE_TO_PROTO = _inverse(RUN_STATE_TO_CORE)
RUN_STEP_TO_CORE = _enum_map(run_pb2.RunStep, "RUN_STEP", vocabulary.RUN_STEPS)
RUN_STEP_TO_PROTO = _inverse(RUN_STEP_TO_CORE)
STRATEGY_TO_CORE = _enum_map(run_pb2.Strategy, "STRATEGY", vocabulary.STRATEGIES)
STRATEGY_TO_PROTO = _inverse(STRATEGY_TO_CORE)
SEED_STRATEGY_TO_CORE = _enum_map(run_pb2.SeedStrategy, "SEED_STRATEGY", vocabulary.SEED_STRATEGIES)
SEED_STRATEGY_TO_PROTO = _inverse(SEED_STRATEGY_TO_CORE)
ORACLE_TO_CORE = _enum_map(run_pb2.OracleMode, "ORACLE_MODE", vocabulary.ORACLES)
ORACLE_TO_PROTO = _inverse(ORACLE_TO_CORE)
JOB_STATE_TO_CORE = _enum_map(trainer_pb2.JobState, "JOB_STATE", vocabulary.JOB_STATES)
JOB_STATE_TO_PROTO = _inverse(JOB_STATE_TO_CORE)
CLASS_BALANCE_TO_CORE = _enum_map(common_pb2.ClassBalance, "CLASS_BALANCE", vocabulary.CLASS_BALANCES)
CLASS_BALANCE_TO_PROTO = _inverse(CLASS_BALANCE_TO_CORE)
PRECISION_TO_CORE = _enum_map(common_pb2.Precision, "PRECISION", vocabulary.PRECISIONS)
PRECISION_TO_PROTO = _inverse(PRECISION_TO_CORE)
HEAD_INIT_TO_CORE = _enum_map(common_pb2.HeadInit, "HEAD_INIT", vocabulary.HEAD_INITS)
HEAD_INIT_TO_PROTO = _inverse(HEAD_INIT_TO_CORE)
POOLING_TO_CORE = _enum_map(common_pb2.Pooling, "POOLING", vocabulary.POOLINGS)
POOLING_TO_PROTO = _inverse(POOLING_TO_CORE)

# Enum fields of Hyperparameters and their maps. CLASS_BALANCE_NONE and PRECISION_AUTO are 0 on
# the wire, so for those two the default is also the value 0.
_HYPER_ENUMS = {
    "class_balance": CLASS_BALANCE_TO_CORE,
    "precision": PRECISION_TO_CORE,
    "head_init": HEAD_INIT_TO_CORE,
    "pooling": POOLING_TO_CORE,
}
_HYPER_ENUMS_TO_PROTO = {name: _inverse(mapping) for name, mapping in _HYPER_ENUMS.items()}
_DEFAULTS = Hyperparameters()


def enum_name(mapping: Mapping[int, str], value: int, what: str) -> str:
    """Proto enum value -> core name; 0 -> "" (the default); unknown -> InvalidArgument."""
    if value == 0 and 0 not in mapping:
        return ""
    try:
        return mapping[value]
    except KeyError:
        raise InvalidArgument(f"{what}: unknown value {value}") from None


def proto_value(name: str, mapping: Mapping[str, Any], what: str) -> Any:
    """Core name -> proto enum value (the inverse of ``enum_name``), for the ``*_TO_PROTO`` maps and
    the like; an unknown name is InvalidArgument naming ``what`` and the names it may be."""
    try:
        return mapping[name]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unknown {what} {name!r} (expected {', '.join(sorted(mapping))})") from None


def run_states_from_proto(values: Iterable[int]) -> list[str]:
    """A ListRuns state filter: the core names; UNSPECIFIED or an unknown value is InvalidArgument."""
    states = [enum_name(RUN_STATE_TO_CORE, value, "run state") for value in values]
    if "" in states:
        raise InvalidArgument("RUN_STATE_UNSPECIFIED is not a state to filter by")
    return states


def parse_time(value: str) -> dt.datetime | None:
    """An RFC 3339 time as the services write it ("" -> None)."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


# ---------------------------------------------------------------- hyperparameters


def hyperparameters_from_proto(message: common_pb2.Hyperparameters) -> Hyperparameters:
    """Zero fields take the defaults (as documented in common.proto); the rest are kept as sent,
    for ``Hyperparameters.validate`` to judge."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Hyperparameters):
        value = getattr(message, field.name)
        if field.name in _HYPER_ENUMS:
            value = enum_name(_HYPER_ENUMS[field.name], value, f"hyperparameters.{field.name}")
        values[field.name] = value if value else getattr(_DEFAULTS, field.name)
    return Hyperparameters(**values)


def hyperparameters_to_proto(values: Hyperparameters, *, explicit: bool = False) -> common_pb2.Hyperparameters:
    """Fields at their default are left 0 ("the default"), unless ``explicit`` (a checkpoint's
    manifest records every value it trained with)."""
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(Hyperparameters):
        value = getattr(values, field.name)
        if not explicit and value == getattr(_DEFAULTS, field.name):
            continue
        if field.name in _HYPER_ENUMS:
            value = _HYPER_ENUMS_TO_PROTO[field.name].get(value, 0)
        fields[field.name] = value
    return common_pb2.Hyperparameters(**fields)


# ---------------------------------------------------------------- run configuration


def amount_from_proto(message: run_pb2.Amount) -> Amount | None:
    which = message.WhichOneof("amount")
    if which is None:
        return None
    # An explicit 0 stays an Amount (of nothing), which RunConfig.validate refuses, rather than the default.
    return Amount(count=message.count) if which == "count" else Amount(fraction=message.fraction)


def amount_to_proto(amount: Amount | None) -> run_pb2.Amount:
    if amount is None:
        return run_pb2.Amount()
    return run_pb2.Amount(count=amount.count) if amount.count else run_pb2.Amount(fraction=amount.fraction)


def run_config_from_proto(message: run_pb2.RunConfig) -> RunConfig:
    """The configuration as sent, not yet validated (``RunConfig.validate``); InvalidArgument for
    an enum value no name exists for."""

    def amount(parent: Any, field: str) -> Amount | None:
        return amount_from_proto(getattr(parent, field)) if parent.HasField(field) else None

    stop = message.stopping
    return RunConfig(
        dataset=message.dataset,
        name=message.name,
        base_model=message.base_model,
        strategy=enum_name(STRATEGY_TO_CORE, message.strategy, "run config: strategy"),
        seed_size=amount(message, "seed_size"),
        seed_strategy=enum_name(SEED_STRATEGY_TO_CORE, message.seed_strategy, "run config: seed_strategy"),
        batch_size=amount(message, "batch_size"),
        stopping=StoppingRule(
            label_budget=amount(stop, "label_budget"),
            max_rounds=stop.max_rounds,
            target_accuracy=stop.target_accuracy,
            stable_agreement=stop.stable_agreement,
        ),
        oracle=enum_name(ORACLE_TO_CORE, message.oracle, "run config: oracle"),
        random_seed=message.random_seed,
        hyperparameters=_run_hyperparameters(message.hyperparameters),
        warm_start=message.warm_start,
        candidates=message.candidates,
        asynchronous=message.asynchronous if message.HasField("asynchronous") else None,
        refill_every=message.refill_every,
        annotator_seconds=message.annotator_seconds,
        overlap=message.overlap,
    )


def _run_hyperparameters(message: common_pb2.Hyperparameters) -> Hyperparameters:
    try:
        return hyperparameters_from_proto(message)
    except InvalidArgument as exc:
        raise InvalidArgument(f"run config: {exc}") from None


def run_config_to_proto(config: RunConfig) -> run_pb2.RunConfig:
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
        refill_every=config.refill_every,
        annotator_seconds=config.annotator_seconds,
        overlap=config.overlap,
    )
    if config.asynchronous is not None:
        message.asynchronous = config.asynchronous
    if config.seed_size is not None:
        message.seed_size.CopyFrom(amount_to_proto(config.seed_size))
    if config.batch_size is not None:
        message.batch_size.CopyFrom(amount_to_proto(config.batch_size))
    if stop.label_budget is not None:
        message.stopping.label_budget.CopyFrom(amount_to_proto(stop.label_budget))
    return message


def run_config_to_json(config: RunConfig) -> str:
    """The stored form of a run's configuration: protobuf JSON with proto field names."""
    return json_format.MessageToJson(
        run_config_to_proto(config), preserving_proto_field_name=True, indent=None, sort_keys=True
    )


def run_config_from_json(text: str, *, dataset: str = "", validate: bool = True) -> RunConfig:
    """A stored configuration, validated unless ``validate`` is false (a read-back of one checked when it
    was stored); InvalidArgument naming what is wrong. ``dataset`` stands in for a configuration that
    names none."""
    message = run_pb2.RunConfig()
    try:
        json_format.Parse(text, message)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"run config: {str(exc)[:200]}") from None
    except (ValueError, TypeError, RecursionError):
        raise InvalidArgument("run config: not valid JSON") from None
    config = run_config_from_proto(message)
    if dataset and not config.dataset:
        config = dataclasses.replace(config, dataset=dataset)
    return config.validate() if validate else config


# ---------------------------------------------------------------- runs, rounds, metrics


def metrics_from_proto(message: common_pb2.EvalMetrics) -> Metrics:
    return Metrics(
        accuracy=message.accuracy,
        macro_f1=message.macro_f1,
        per_class_f1=dict(message.per_class_f1),
        count=message.count,
        loss=message.loss,
    )


def metrics_to_proto(metrics: Metrics | None) -> common_pb2.EvalMetrics:
    if metrics is None:
        return common_pb2.EvalMetrics()
    return common_pb2.EvalMetrics(
        accuracy=metrics.accuracy,
        macro_f1=metrics.macro_f1,
        per_class_f1=metrics.per_class_f1,
        count=metrics.count,
        loss=metrics.loss,
    )


def _metrics_if_counted(message: common_pb2.EvalMetrics) -> Metrics | None:
    return metrics_from_proto(message) if message.count else None


def comparison_to_proto(comparison: Comparison) -> common_pb2.ModelComparison:
    return common_pb2.ModelComparison(**comparison.as_dict())


def comparison_from_proto(message: common_pb2.ModelComparison) -> Comparison | None:
    """None for an unset (or empty) message; an inconsistent one is dropped too (``Comparison.from_dict``)."""
    return Comparison.from_dict(
        {
            "against": message.against,
            "count": message.count,
            "new_only": message.new_only,
            "kept_only": message.kept_only,
        }
    )


def run_from_proto(message: run_pb2.Run) -> Run:
    return Run(
        id=message.id,
        config=run_config_from_proto(message.config),
        state=RUN_STATE_TO_CORE.get(message.state, "PENDING"),
        step=RUN_STEP_TO_CORE.get(message.step, "SEED"),
        round=message.round,
        error=message.error,
        labelled_count=message.labelled_count,
        pool_size=message.pool_size,
        stop_reason=message.stop_reason,
        created_at=message.created_at,
        updated_at=message.updated_at,
    )


def run_to_proto(run: Run) -> run_pb2.Run:
    return run_pb2.Run(
        id=run.id,
        config=run_config_to_proto(run.config),
        state=RUN_STATE_TO_PROTO[run.state],
        step=RUN_STEP_TO_PROTO[run.step],
        round=run.round,
        error=run.error,
        created_at=run.created_at,
        updated_at=run.updated_at,
        labelled_count=run.labelled_count,
        pool_size=run.pool_size,
        stop_reason=run.stop_reason,
    )


def round_from_proto(message: run_pb2.Round) -> Round:
    return Round(
        run_id=message.run_id,
        index=message.index,
        labelled_count=message.labelled_count,
        train_job_id=message.train_job_id,
        checkpoint_id=message.checkpoint_id,
        test=_metrics_if_counted(message.test),
        agreement=message.agreement,
        selected_count=message.selected_count,
        started_at=message.started_at,
        finished_at=message.finished_at,
        train_seconds=message.train_seconds,
        score_seconds=message.score_seconds,
        validation=_metrics_if_counted(message.validation),
        comparison=comparison_from_proto(message.comparison),
    )


def round_to_proto(info: Round) -> run_pb2.Round:
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
    if info.comparison is not None:
        message.comparison.CopyFrom(comparison_to_proto(info.comparison))
    return message


def acquisition_from_proto(message: run_pb2.Acquisition) -> Acquisition:
    return Acquisition(
        sample_id=message.sample_id,
        round=message.round,
        strategy=STRATEGY_TO_CORE.get(message.strategy, ""),
        score=message.score,
        label=message.label,
        text=message.text,
        opinions=dict(message.opinions),
    )


def acquisition_to_proto(item: Acquisition) -> run_pb2.Acquisition:
    return run_pb2.Acquisition(
        sample_id=item.sample_id,
        round=item.round,
        strategy=STRATEGY_TO_PROTO.get(item.strategy, run_pb2.STRATEGY_UNSPECIFIED),
        score=item.score,
        label=item.label,
        text=item.text,
        opinions=dict(item.opinions),
    )


def label_result_from_proto(message: pool_pb2.SubmitLabelsResponse) -> LabelResult:
    return LabelResult(
        recorded=message.recorded,
        unchanged=message.unchanged,
        changed=message.changed,
        labels=tuple((a.sample_id, a.label) for a in message.labels),
        second_opinions=message.second_opinions,
    )


def label_result_to_proto(result: LabelResult) -> pool_pb2.SubmitLabelsResponse:
    return pool_pb2.SubmitLabelsResponse(
        recorded=result.recorded,
        unchanged=result.unchanged,
        changed=result.changed,
        labels=[pool_pb2.LabelAssignment(sample_id=i, label=label) for i, label in result.labels],
        second_opinions=result.second_opinions,
    )


def step_progress_to_proto(progress: StepProgress) -> coordinator_pb2.StepProgress:
    return coordinator_pb2.StepProgress(**dataclasses.asdict(progress))


def step_progress_from_proto(message: coordinator_pb2.StepProgress) -> StepProgress | None:
    """None for an unset message (nothing counted)."""
    if not message.unit:
        return None
    return StepProgress(
        unit=message.unit,
        done=message.done,
        total=message.total,
        per_second=message.per_second,
        samples_per_second=message.samples_per_second,
        elapsed_seconds=message.elapsed_seconds,
        eta_seconds=message.eta_seconds,
    )


def run_event_from_proto(message: coordinator_pb2.RunEvent) -> RunEvent:
    return RunEvent(
        run=run_from_proto(message.run),
        round=round_from_proto(message.round) if message.HasField("round") else None,
        step_progress=message.step_progress,
        message=message.message,
        progress=step_progress_from_proto(message.progress),
    )


def run_event_to_proto(event: RunEvent) -> coordinator_pb2.RunEvent:
    message = coordinator_pb2.RunEvent(
        run=run_to_proto(event.run), step_progress=event.step_progress, message=event.message
    )
    if event.round is not None:
        message.round.CopyFrom(round_to_proto(event.round))
    if event.progress is not None:
        message.progress.CopyFrom(step_progress_to_proto(event.progress))
    return message


# ---------------------------------------------------------------- which samples


def shard_from_proto(request: Any) -> Shard | None:
    """The ``shard`` field of a ListSamples or ScorePool request: None when unset; a set one is checked
    (an explicit ``Shard{}`` has count 0 and is refused)."""
    if not request.HasField("shard"):
        return None
    return Shard(request.shard.index, request.shard.count)


def shard_to_proto(shard: Shard | None) -> common_pb2.Shard | None:
    return None if shard is None else common_pb2.Shard(index=shard.index, count=shard.count)


def random_subset(size: int, seed: int) -> common_pb2.RandomSubset | None:
    """The RandomSubset message of ``size`` samples under ``seed``; None (no subset) when ``size`` is 0."""
    return common_pb2.RandomSubset(size=size, seed=seed) if size else None


def sample_query_from_proto(request: Any) -> SampleQuery:
    """The samples a ScorePool request names, validated; an unset split is the train split."""
    split = "train" if request.split == 0 else enum_name(SPLIT_TO_CORE, request.split, "split")
    return SampleQuery(
        dataset=request.dataset,
        split=split,
        run_id=request.run_id,
        include_all=request.include_all,
        subset=request.subset.size,
        subset_seed=request.subset.seed,
        sample_ids=tuple(request.sample_ids),
        shard=shard_from_proto(request),
    ).validate()


def sample_query_fields(query: SampleQuery) -> dict[str, Any]:
    """The fields of a ScorePool request that name ``query``'s samples."""
    return {
        "dataset": query.dataset,
        "split": SPLIT_TO_PROTO[query.split],
        "run_id": query.run_id,
        "include_all": query.include_all,
        "subset": random_subset(query.subset, query.subset_seed),
        "sample_ids": list(query.sample_ids),
        "shard": shard_to_proto(query.shard),
    }


# ---------------------------------------------------------------- training and scoring


def fast_head_to_proto(head: FastHead) -> common_pb2.FastHead:
    head.validate()
    return common_pb2.FastHead(run_id=head.run_id, base_model=head.base_model, dataset=head.dataset)


def fast_head_from_proto(message: common_pb2.FastHead) -> FastHead:
    """The fast head a ModelRef names, validated."""
    return FastHead(run_id=message.run_id, dataset=message.dataset, base_model=message.base_model).validate()


def train_request_from_proto(message: trainer_pb2.StartTrainingRequest) -> TrainRequest:
    return TrainRequest(
        dataset=message.dataset,
        run_id=message.run_id,
        round=message.round,
        base_model=message.base_model,
        hyperparameters=hyperparameters_from_proto(message.hyperparameters),
        seed=message.seed,
        warm_start_checkpoint=message.warm_start_checkpoint,
        labels=tuple(message.labels),
        request_id=message.request_id,
    )


def train_request_to_proto(request: TrainRequest) -> trainer_pb2.StartTrainingRequest:
    return trainer_pb2.StartTrainingRequest(
        dataset=request.dataset,
        run_id=request.run_id,
        round=request.round,
        base_model=request.base_model,
        hyperparameters=hyperparameters_to_proto(request.hyperparameters),
        seed=request.seed,
        warm_start_checkpoint=request.warm_start_checkpoint,
        labels=list(request.labels),
        request_id=request.request_id,
    )


def pool_scores_from_chunks(chunks: Iterable[Any], *, probabilities: bool, embeddings: bool) -> PoolScores:
    """Stack a ScorePool stream (or one chunk of it, as a one-item list) into arrays (one pass, no
    per-row Python objects kept)."""
    labels: tuple[str, ...] = ()
    checkpoint_id = ""
    ids: list[int] = []
    predicted: list[str] = []
    probs: list[np.ndarray] = []
    embs: list[np.ndarray] = []
    gold: list[str] = []
    entropy: list[float] = []
    margin: list[float] = []
    least_confidence: list[float] = []
    ratio: list[float] = []
    for chunk in chunks:
        if chunk.labels:
            labels = tuple(chunk.labels)
        checkpoint_id = checkpoint_id or chunk.checkpoint_id
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
    if probabilities:
        stacked = np.stack(probs) if n else np.zeros((0, len(labels)))
    return PoolScores(
        labels=labels,
        sample_ids=np.asarray(ids, dtype=np.int64),
        predicted=np.asarray(predicted, dtype=object),
        probabilities=stacked if probabilities else None,
        embeddings=np.stack(embs) if embeddings and n else None,
        gold=np.asarray(gold, dtype=object) if gold else None,
        uncertainty=Uncertainty(
            entropy=np.asarray(entropy, dtype=np.float64),
            margin=np.asarray(margin, dtype=np.float64),
            least_confidence=np.asarray(least_confidence, dtype=np.float64),
            ratio=np.asarray(ratio, dtype=np.float64),
        ),
        checkpoint_id=checkpoint_id,
    )
