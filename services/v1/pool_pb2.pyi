from lesslabels.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_FORMAT_AUTO: _ClassVar[ImportFormat]
    IMPORT_FORMAT_CSV_LABEL_TEXT: _ClassVar[ImportFormat]
    IMPORT_FORMAT_CSV_HEADER: _ClassVar[ImportFormat]
    IMPORT_FORMAT_JSONL: _ClassVar[ImportFormat]
    IMPORT_FORMAT_PARQUET: _ClassVar[ImportFormat]

class LabelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_STATE_ANY: _ClassVar[LabelState]
    LABEL_STATE_LABELLED: _ClassVar[LabelState]
    LABEL_STATE_UNLABELLED: _ClassVar[LabelState]
IMPORT_FORMAT_AUTO: ImportFormat
IMPORT_FORMAT_CSV_LABEL_TEXT: ImportFormat
IMPORT_FORMAT_CSV_HEADER: ImportFormat
IMPORT_FORMAT_JSONL: ImportFormat
IMPORT_FORMAT_PARQUET: ImportFormat
LABEL_STATE_ANY: LabelState
LABEL_STATE_LABELLED: LabelState
LABEL_STATE_UNLABELLED: LabelState

class Dataset(_message.Message):
    __slots__ = ("name", "description", "labels", "train_count", "test_count", "dev_count", "labelled_count", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEV_COUNT_FIELD_NUMBER: _ClassVar[int]
    LABELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    train_count: int
    test_count: int
    dev_count: int
    labelled_count: int
    created_at: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., train_count: _Optional[int] = ..., test_count: _Optional[int] = ..., dev_count: _Optional[int] = ..., labelled_count: _Optional[int] = ..., created_at: _Optional[str] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("name", "description", "labels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ...) -> None: ...

class ImportHeader(_message.Message):
    __slots__ = ("dataset", "format", "split", "create_dataset", "keep_whitespace", "text_column", "label_column", "id_column", "allow_similar_labels", "check_only", "request_id", "ignore_extra")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    CREATE_DATASET_FIELD_NUMBER: _ClassVar[int]
    KEEP_WHITESPACE_FIELD_NUMBER: _ClassVar[int]
    TEXT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SIMILAR_LABELS_FIELD_NUMBER: _ClassVar[int]
    CHECK_ONLY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EXTRA_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    format: ImportFormat
    split: _common_pb2.Split
    create_dataset: bool
    keep_whitespace: bool
    text_column: str
    label_column: str
    id_column: str
    allow_similar_labels: bool
    check_only: bool
    request_id: str
    ignore_extra: bool
    def __init__(self, dataset: _Optional[str] = ..., format: _Optional[_Union[ImportFormat, str]] = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ..., create_dataset: bool = ..., keep_whitespace: bool = ..., text_column: _Optional[str] = ..., label_column: _Optional[str] = ..., id_column: _Optional[str] = ..., allow_similar_labels: bool = ..., check_only: bool = ..., request_id: _Optional[str] = ..., ignore_extra: bool = ...) -> None: ...

class ImportSamplesRequest(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: ImportHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[ImportHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Duplicate(_message.Message):
    __slots__ = ("rows", "text", "first_row")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FIRST_ROW_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedScalarFieldContainer[int]
    text: str
    first_row: int
    def __init__(self, rows: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., first_row: _Optional[int] = ...) -> None: ...

class ImportSummary(_message.Message):
    __slots__ = ("dataset", "imported", "by_label", "duplicates", "duplicate_rows", "format", "by_split", "columns", "checked_only", "replayed")
    class ByLabelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class BySplitEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ColumnsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATASET_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    BY_LABEL_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_ROWS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    BY_SPLIT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_ONLY_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    imported: int
    by_label: _containers.ScalarMap[str, int]
    duplicates: _containers.RepeatedCompositeFieldContainer[Duplicate]
    duplicate_rows: int
    format: ImportFormat
    by_split: _containers.ScalarMap[str, int]
    columns: _containers.ScalarMap[str, str]
    checked_only: bool
    replayed: bool
    def __init__(self, dataset: _Optional[str] = ..., imported: _Optional[int] = ..., by_label: _Optional[_Mapping[str, int]] = ..., duplicates: _Optional[_Iterable[_Union[Duplicate, _Mapping]]] = ..., duplicate_rows: _Optional[int] = ..., format: _Optional[_Union[ImportFormat, str]] = ..., by_split: _Optional[_Mapping[str, int]] = ..., columns: _Optional[_Mapping[str, str]] = ..., checked_only: bool = ..., replayed: bool = ...) -> None: ...

class ListSamplesRequest(_message.Message):
    __slots__ = ("dataset", "split", "state", "run_id", "page_size", "page_token", "limit", "include_gold", "subset", "sample_ids", "shard", "annotator")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_GOLD_FIELD_NUMBER: _ClassVar[int]
    SUBSET_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    split: _common_pb2.Split
    state: LabelState
    run_id: int
    page_size: int
    page_token: str
    limit: int
    include_gold: bool
    subset: _common_pb2.RandomSubset
    sample_ids: _containers.RepeatedScalarFieldContainer[int]
    shard: _common_pb2.Shard
    annotator: str
    def __init__(self, dataset: _Optional[str] = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ..., state: _Optional[_Union[LabelState, str]] = ..., run_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., limit: _Optional[int] = ..., include_gold: bool = ..., subset: _Optional[_Union[_common_pb2.RandomSubset, _Mapping]] = ..., sample_ids: _Optional[_Iterable[int]] = ..., shard: _Optional[_Union[_common_pb2.Shard, _Mapping]] = ..., annotator: _Optional[str] = ...) -> None: ...

class SamplePage(_message.Message):
    __slots__ = ("samples", "next_page_token", "total")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[_common_pb2.Sample]
    next_page_token: str
    total: int
    def __init__(self, samples: _Optional[_Iterable[_Union[_common_pb2.Sample, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class LabelAssignment(_message.Message):
    __slots__ = ("sample_id", "label")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    sample_id: int
    label: str
    def __init__(self, sample_id: _Optional[int] = ..., label: _Optional[str] = ...) -> None: ...

class SubmitLabelsRequest(_message.Message):
    __slots__ = ("dataset", "run_id", "labels", "source", "annotator", "idempotency_key", "second_opinion")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SECOND_OPINION_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    run_id: int
    labels: _containers.RepeatedCompositeFieldContainer[LabelAssignment]
    source: _common_pb2.LabelSource
    annotator: str
    idempotency_key: str
    second_opinion: bool
    def __init__(self, dataset: _Optional[str] = ..., run_id: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[LabelAssignment, _Mapping]]] = ..., source: _Optional[_Union[_common_pb2.LabelSource, str]] = ..., annotator: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., second_opinion: bool = ...) -> None: ...

class SubmitLabelsResponse(_message.Message):
    __slots__ = ("recorded", "unchanged", "changed", "labels", "second_opinions")
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SECOND_OPINIONS_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    unchanged: int
    changed: int
    labels: _containers.RepeatedCompositeFieldContainer[LabelAssignment]
    second_opinions: int
    def __init__(self, recorded: _Optional[int] = ..., unchanged: _Optional[int] = ..., changed: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[LabelAssignment, _Mapping]]] = ..., second_opinions: _Optional[int] = ...) -> None: ...

class GetCountsRequest(_message.Message):
    __slots__ = ("dataset", "run_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    run_id: int
    def __init__(self, dataset: _Optional[str] = ..., run_id: _Optional[int] = ...) -> None: ...

class SplitCounts(_message.Message):
    __slots__ = ("total", "labelled", "labelled_by_label", "gold_by_label")
    class LabelledByLabelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class GoldByLabelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    LABELLED_BY_LABEL_FIELD_NUMBER: _ClassVar[int]
    GOLD_BY_LABEL_FIELD_NUMBER: _ClassVar[int]
    total: int
    labelled: int
    labelled_by_label: _containers.ScalarMap[str, int]
    gold_by_label: _containers.ScalarMap[str, int]
    def __init__(self, total: _Optional[int] = ..., labelled: _Optional[int] = ..., labelled_by_label: _Optional[_Mapping[str, int]] = ..., gold_by_label: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Counts(_message.Message):
    __slots__ = ("dataset", "run_id", "train", "test", "dev")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    DEV_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    run_id: int
    train: SplitCounts
    test: SplitCounts
    dev: SplitCounts
    def __init__(self, dataset: _Optional[str] = ..., run_id: _Optional[int] = ..., train: _Optional[_Union[SplitCounts, _Mapping]] = ..., test: _Optional[_Union[SplitCounts, _Mapping]] = ..., dev: _Optional[_Union[SplitCounts, _Mapping]] = ...) -> None: ...

class ExportLabelsRequest(_message.Message):
    __slots__ = ("dataset", "run_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    run_id: int
    def __init__(self, dataset: _Optional[str] = ..., run_id: _Optional[int] = ...) -> None: ...

class ExportChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class SetDatasetLabelsRequest(_message.Message):
    __slots__ = ("dataset", "labels")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ("dataset", "samples")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    samples: int
    def __init__(self, dataset: _Optional[str] = ..., samples: _Optional[int] = ...) -> None: ...

class GetLabelHistoryRequest(_message.Message):
    __slots__ = ("dataset", "sample_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    sample_id: int
    def __init__(self, dataset: _Optional[str] = ..., sample_id: _Optional[int] = ...) -> None: ...

class LabelEvent(_message.Message):
    __slots__ = ("sample_id", "label", "source", "annotator", "created_at")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    sample_id: int
    label: str
    source: _common_pb2.LabelSource
    annotator: str
    created_at: str
    def __init__(self, sample_id: _Optional[int] = ..., label: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.LabelSource, str]] = ..., annotator: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class LabelHistory(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[LabelEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[LabelEvent, _Mapping]]] = ...) -> None: ...

class ListAnnotatorsRequest(_message.Message):
    __slots__ = ("dataset", "run_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    run_id: int
    def __init__(self, dataset: _Optional[str] = ..., run_id: _Optional[int] = ...) -> None: ...

class Annotator(_message.Message):
    __slots__ = ("name", "labels", "last_labelled_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LAST_LABELLED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: int
    last_labelled_at: str
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[int] = ..., last_labelled_at: _Optional[str] = ...) -> None: ...

class ListAnnotatorsResponse(_message.Message):
    __slots__ = ("annotators",)
    ANNOTATORS_FIELD_NUMBER: _ClassVar[int]
    annotators: _containers.RepeatedCompositeFieldContainer[Annotator]
    def __init__(self, annotators: _Optional[_Iterable[_Union[Annotator, _Mapping]]] = ...) -> None: ...

class ListLabelOpinionsRequest(_message.Message):
    __slots__ = ("dataset", "disputed_only")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DISPUTED_ONLY_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    disputed_only: bool
    def __init__(self, dataset: _Optional[str] = ..., disputed_only: bool = ...) -> None: ...

class LabelOpinion(_message.Message):
    __slots__ = ("annotator", "label", "labelled_at")
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABELLED_AT_FIELD_NUMBER: _ClassVar[int]
    annotator: str
    label: str
    labelled_at: str
    def __init__(self, annotator: _Optional[str] = ..., label: _Optional[str] = ..., labelled_at: _Optional[str] = ...) -> None: ...

class LabelOpinions(_message.Message):
    __slots__ = ("sample_id", "text", "label", "opinions", "disputed", "review")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    OPINIONS_FIELD_NUMBER: _ClassVar[int]
    DISPUTED_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    sample_id: int
    text: str
    label: str
    opinions: _containers.RepeatedCompositeFieldContainer[LabelOpinion]
    disputed: bool
    review: LabelOpinion
    def __init__(self, sample_id: _Optional[int] = ..., text: _Optional[str] = ..., label: _Optional[str] = ..., opinions: _Optional[_Iterable[_Union[LabelOpinion, _Mapping]]] = ..., disputed: bool = ..., review: _Optional[_Union[LabelOpinion, _Mapping]] = ...) -> None: ...

class ListLabelOpinionsResponse(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedCompositeFieldContainer[LabelOpinions]
    def __init__(self, texts: _Optional[_Iterable[_Union[LabelOpinions, _Mapping]]] = ...) -> None: ...
