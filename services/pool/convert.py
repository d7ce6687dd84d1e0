"""Protobuf <-> the pool core's own values, at the edge of PoolService and RunStore. The shared types'
codecs and enum maps are ``lesslabels.contract.wire`` (whose JSON form of a run configuration the
store also reads back to check it)."""

from __future__ import annotations

from google.protobuf import json_format

from lesslabels.contract import wire
from lesslabels.common.errors import InvalidArgument
from lesslabels.common.timeutil import rfc3339
from lesslabels.pool import importers
from lesslabels.pool.store import (
    AcquisitionRecord,
    DatasetInfo,
    ImportResult,
    LabelEventRecord,
    LabelResult,
    RoundRecord,
    RunRecord,
    SampleRecord,
    SplitCount,
)
from lesslabels.v1 import common_pb2, pool_pb2, run_pb2

STATE_TO_CORE = {
    pool_pb2.LABEL_STATE_ANY: "any",
    pool_pb2.LABEL_STATE_LABELLED: "labelled",
    pool_pb2.LABEL_STATE_UNLABELLED: "unlabelled",
}
FORMAT_TO_CORE = {
    pool_pb2.IMPORT_FORMAT_AUTO: importers.Format.AUTO,
    pool_pb2.IMPORT_FORMAT_CSV_LABEL_TEXT: importers.Format.CSV_LABEL_TEXT,
    pool_pb2.IMPORT_FORMAT_CSV_HEADER: importers.Format.CSV_HEADER,
    pool_pb2.IMPORT_FORMAT_JSONL: importers.Format.JSONL,
}
FORMAT_TO_PROTO = {v: k for k, v in FORMAT_TO_CORE.items()}


def enum_value(mapping: dict, value: int, what: str, *, allow_unspecified=True):
    """Map a proto enum to its core value; 0 (UNSPECIFIED) -> None when allowed."""
    if value == 0 and allow_unspecified and 0 not in mapping:
        return None
    try:
        return mapping[value]
    except KeyError:
        raise InvalidArgument(f"unknown {what} value {value}") from None


def dataset_to_proto(info: DatasetInfo) -> pool_pb2.Dataset:
    return pool_pb2.Dataset(
        name=info.name,
        description=info.description,
        labels=info.labels,
        train_count=info.counts.get("train", 0),
        test_count=info.counts.get("test", 0),
        dev_count=info.counts.get("dev", 0),
        labelled_count=info.labelled,
        created_at=rfc3339(info.created_at),
    )


def import_columns_from_proto(header: pool_pb2.ImportHeader) -> importers.Columns:
    return importers.Columns(text=header.text_column, label=header.label_column, id=header.id_column)


def import_result_to_proto(result: ImportResult) -> pool_pb2.ImportSummary:
    return pool_pb2.ImportSummary(
        dataset=result.dataset,
        imported=result.imported,
        by_label=result.by_label,
        duplicates=[pool_pb2.Duplicate(rows=d.rows, text=d.text, first_row=d.first_row) for d in result.duplicates],
        duplicate_rows=result.duplicate_rows,
        format=FORMAT_TO_PROTO[result.format],
        by_split=result.by_split,
        columns=result.columns,
        checked_only=result.checked_only,
    )


def sample_to_proto(sample: SampleRecord) -> common_pb2.Sample:
    return common_pb2.Sample(
        id=sample.id,
        dataset=sample.dataset,
        text=sample.text,
        split=wire.SPLIT_TO_PROTO[sample.split],
        label=sample.label,
        row=sample.row,
        gold_label=sample.gold_label,
    )


def label_result_to_proto(result: LabelResult) -> pool_pb2.SubmitLabelsResponse:
    return pool_pb2.SubmitLabelsResponse(
        recorded=result.recorded,
        unchanged=result.unchanged,
        changed=result.changed,
        labels=[pool_pb2.LabelAssignment(sample_id=sid, label=label) for sid, label in result.labels],
    )


def split_counts_to_proto(count: SplitCount) -> pool_pb2.SplitCounts:
    return pool_pb2.SplitCounts(
        total=count.total,
        labelled=count.labelled,
        labelled_by_label=count.labelled_by_label,
        gold_by_label=count.gold_by_label,
    )


def run_to_proto(record: RunRecord) -> run_pb2.Run:
    try:
        config = json_format.Parse(record.config_json, run_pb2.RunConfig(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError):
        # runs.bad_config let it through, yet protobuf refuses it: still list the run.
        config = run_pb2.RunConfig(dataset=record.dataset)
    return run_pb2.Run(
        id=record.id,
        config=config,
        state=wire.RUN_STATE_TO_PROTO[record.state],
        step=wire.RUN_STEP_TO_PROTO[record.step],
        round=record.round,
        error=record.error,
        created_at=rfc3339(record.created_at),
        updated_at=rfc3339(record.updated_at),
        labelled_count=record.labelled_count,
        pool_size=record.pool_size,
        stop_reason=record.stop_reason,
    )


def round_to_proto(record: RoundRecord) -> run_pb2.Round:
    test = json_format.ParseDict(record.test_metrics or {}, common_pb2.EvalMetrics(), ignore_unknown_fields=True)
    validation = json_format.ParseDict(
        record.validation_metrics or {}, common_pb2.EvalMetrics(), ignore_unknown_fields=True
    )
    return run_pb2.Round(
        run_id=record.run_id,
        index=record.index,
        labelled_count=record.labelled_count,
        train_job_id=record.train_job_id,
        checkpoint_id=record.checkpoint_id,
        test=test,
        agreement=record.agreement,
        selected_count=record.selected_count,
        started_at=rfc3339(record.started_at),
        finished_at=rfc3339(record.finished_at),
        train_seconds=record.train_seconds,
        score_seconds=record.score_seconds,
        validation=validation,
    )


def round_from_proto(message: run_pb2.Round) -> RoundRecord:
    import datetime as dt

    def parse_time(value: str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    try:
        started, finished = parse_time(message.started_at), parse_time(message.finished_at)
    except ValueError as exc:
        raise InvalidArgument(f"round time is not RFC 3339: {exc}") from None
    return RoundRecord(
        run_id=message.run_id,
        index=message.index,
        labelled_count=message.labelled_count,
        train_job_id=message.train_job_id,
        checkpoint_id=message.checkpoint_id,
        test_metrics=json_format.MessageToDict(message.test, preserving_proto_field_name=True),
        agreement=message.agreement,
        selected_count=message.selected_count,
        started_at=started,
        finished_at=finished,
        train_seconds=message.train_seconds,
        score_seconds=message.score_seconds,
        validation_metrics=json_format.MessageToDict(message.validation, preserving_proto_field_name=True),
    )


def acquisition_to_proto(record: AcquisitionRecord) -> run_pb2.Acquisition:
    return run_pb2.Acquisition(
        sample_id=record.sample_id,
        round=record.round,
        strategy=record.strategy if record.strategy in run_pb2.Strategy.keys() else run_pb2.STRATEGY_UNSPECIFIED,
        score=record.score,
        label=record.label,
        text=record.text,
    )


def acquisition_from_proto(message: run_pb2.Acquisition) -> AcquisitionRecord:
    if message.strategy not in run_pb2.Strategy.values():
        raise InvalidArgument(f"acquisition of sample {message.sample_id}: unknown strategy value {message.strategy}")
    return AcquisitionRecord(
        sample_id=message.sample_id,
        round=message.round,
        strategy=run_pb2.Strategy.Name(message.strategy),
        score=message.score,
    )


def label_event_to_proto(record: LabelEventRecord) -> pool_pb2.LabelEvent:
    return pool_pb2.LabelEvent(
        sample_id=record.sample_id,
        label=record.label,
        source=wire.SOURCE_TO_PROTO[record.source],
        annotator=record.annotator,
        created_at=rfc3339(record.created_at),
    )
