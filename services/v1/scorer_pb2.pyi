from lesslabels.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextScore(_message.Message):
    __slots__ = ("probabilities", "predicted_label", "entropy", "margin", "least_confidence", "ratio", "truncated", "embedding")
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    LEAST_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    predicted_label: str
    entropy: float
    margin: float
    least_confidence: float
    ratio: float
    truncated: bool
    embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, probabilities: _Optional[_Iterable[float]] = ..., predicted_label: _Optional[str] = ..., entropy: _Optional[float] = ..., margin: _Optional[float] = ..., least_confidence: _Optional[float] = ..., ratio: _Optional[float] = ..., truncated: bool = ..., embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("model", "texts", "include_embeddings", "omit_probabilities")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    OMIT_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    texts: _containers.RepeatedScalarFieldContainer[str]
    include_embeddings: bool
    omit_probabilities: bool
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., texts: _Optional[_Iterable[str]] = ..., include_embeddings: bool = ..., omit_probabilities: bool = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("checkpoint_id", "labels", "scores")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedCompositeFieldContainer[TextScore]
    def __init__(self, checkpoint_id: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[_Union[TextScore, _Mapping]]] = ...) -> None: ...

class ScorePoolRequest(_message.Message):
    __slots__ = ("model", "dataset", "run_id", "chunk_size", "include_embeddings", "omit_probabilities", "split", "include_all", "subset", "sample_ids", "shard")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    OMIT_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ALL_FIELD_NUMBER: _ClassVar[int]
    SUBSET_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    dataset: str
    run_id: int
    chunk_size: int
    include_embeddings: bool
    omit_probabilities: bool
    split: _common_pb2.Split
    include_all: bool
    subset: _common_pb2.RandomSubset
    sample_ids: _containers.RepeatedScalarFieldContainer[int]
    shard: _common_pb2.Shard
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., dataset: _Optional[str] = ..., run_id: _Optional[int] = ..., chunk_size: _Optional[int] = ..., include_embeddings: bool = ..., omit_probabilities: bool = ..., split: _Optional[_Union[_common_pb2.Split, str]] = ..., include_all: bool = ..., subset: _Optional[_Union[_common_pb2.RandomSubset, _Mapping]] = ..., sample_ids: _Optional[_Iterable[int]] = ..., shard: _Optional[_Union[_common_pb2.Shard, _Mapping]] = ...) -> None: ...

class ScorePoolChunk(_message.Message):
    __slots__ = ("checkpoint_id", "labels", "sample_ids", "scores", "done", "total", "gold_labels")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    GOLD_LABELS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    sample_ids: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedCompositeFieldContainer[TextScore]
    done: int
    total: int
    gold_labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, checkpoint_id: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., sample_ids: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[_Union[TextScore, _Mapping]]] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., gold_labels: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedPoolRequest(_message.Message):
    __slots__ = ("dataset", "base_model", "chunk_size", "shard")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    base_model: str
    chunk_size: int
    shard: _common_pb2.Shard
    def __init__(self, dataset: _Optional[str] = ..., base_model: _Optional[str] = ..., chunk_size: _Optional[int] = ..., shard: _Optional[_Union[_common_pb2.Shard, _Mapping]] = ...) -> None: ...

class EmbedPoolProgress(_message.Message):
    __slots__ = ("done", "total", "computed")
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_FIELD_NUMBER: _ClassVar[int]
    done: int
    total: int
    computed: int
    def __init__(self, done: _Optional[int] = ..., total: _Optional[int] = ..., computed: _Optional[int] = ...) -> None: ...

class LoadCheckpointRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class LoadedModel(_message.Message):
    __slots__ = ("checkpoint_id", "labels", "base_model", "device", "max_length", "loaded_at", "runtime")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    base_model: str
    device: str
    max_length: int
    loaded_at: str
    runtime: str
    def __init__(self, checkpoint_id: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., base_model: _Optional[str] = ..., device: _Optional[str] = ..., max_length: _Optional[int] = ..., loaded_at: _Optional[str] = ..., runtime: _Optional[str] = ...) -> None: ...

class ListLoadedRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLoadedResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[LoadedModel]
    def __init__(self, models: _Optional[_Iterable[_Union[LoadedModel, _Mapping]]] = ...) -> None: ...

class UnloadCheckpointRequest(_message.Message):
    __slots__ = ("checkpoint_id",)
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    def __init__(self, checkpoint_id: _Optional[str] = ...) -> None: ...

class UnloadCheckpointResponse(_message.Message):
    __slots__ = ("unloaded",)
    UNLOADED_FIELD_NUMBER: _ClassVar[int]
    unloaded: bool
    def __init__(self, unloaded: bool = ...) -> None: ...
