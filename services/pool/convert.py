"""Protobuf <-> the pool's own values (records.py: datasets, samples, imports, counts, label events), at
the edge of PoolService. The shared types' codecs and every enum map are ``lesslabels.contract.wire``;
so is the reading of a stored run (run_servicer.py)."""

from __future__ import annotations

from lesslabels.common.timeutil import rfc3339
from lesslabels.contract import wire
from lesslabels.pool import importers
from lesslabels.pool.opinions import Opinion, TextOpinions
from lesslabels.pool.store import (
    AnnotatorRecord,
    DatasetInfo,
    ImportResult,
    LabelEventRecord,
    SampleRecord,
    SplitCount,
)
from lesslabels.v1 import common_pb2, pool_pb2


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
    return importers.Columns(
        text=header.text_column, label=header.label_column, id=header.id_column, ignore_extra=header.ignore_extra
    )


def import_result_to_proto(result: ImportResult) -> pool_pb2.ImportSummary:
    return pool_pb2.ImportSummary(
        dataset=result.dataset,
        imported=result.imported,
        by_label=result.by_label,
        duplicates=[pool_pb2.Duplicate(rows=d.rows, text=d.text, first_row=d.first_row) for d in result.duplicates],
        duplicate_rows=result.duplicate_rows,
        format=wire.IMPORT_FORMAT_TO_PROTO[result.format.value],
        by_split=result.by_split,
        columns=result.columns,
        checked_only=result.checked_only,
        replayed=result.replayed,
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
        annotator=sample.annotator,
        label_source=(
            wire.SOURCE_TO_PROTO[sample.label_source] if sample.label_source else common_pb2.LABEL_SOURCE_UNSPECIFIED
        ),
        labelled_at=rfc3339(sample.labelled_at),
    )


def split_counts_to_proto(count: SplitCount) -> pool_pb2.SplitCounts:
    return pool_pb2.SplitCounts(
        total=count.total,
        labelled=count.labelled,
        labelled_by_label=count.labelled_by_label,
        gold_by_label=count.gold_by_label,
    )


def annotator_to_proto(record: AnnotatorRecord) -> pool_pb2.Annotator:
    return pool_pb2.Annotator(name=record.name, labels=record.labels, last_labelled_at=rfc3339(record.last_labelled_at))


def _opinion_to_proto(opinion: Opinion) -> pool_pb2.LabelOpinion:
    return pool_pb2.LabelOpinion(
        annotator=opinion.annotator, label=opinion.label, labelled_at=rfc3339(opinion.labelled_at)
    )


def text_opinions_to_proto(record: TextOpinions) -> pool_pb2.LabelOpinions:
    message = pool_pb2.LabelOpinions(
        sample_id=record.sample_id,
        text=record.text,
        label=record.label,
        opinions=[_opinion_to_proto(o) for o in record.opinions],
        disputed=record.disputed,
    )
    if record.review is not None:
        message.review.CopyFrom(_opinion_to_proto(record.review))
    return message


def label_event_to_proto(record: LabelEventRecord) -> pool_pb2.LabelEvent:
    return pool_pb2.LabelEvent(
        sample_id=record.sample_id,
        label=record.label,
        source=wire.SOURCE_TO_PROTO[record.source],
        annotator=record.annotator,
        created_at=rfc3339(record.created_at),
    )
