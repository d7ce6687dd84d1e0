from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Split(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_UNSPECIFIED: _ClassVar[Split]
    SPLIT_TRAIN: _ClassVar[Split]
    SPLIT_TEST: _ClassVar[Split]
    SPLIT_DEV: _ClassVar[Split]

class LabelSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_SOURCE_UNSPECIFIED: _ClassVar[LabelSource]
    LABEL_SOURCE_SEED: _ClassVar[LabelSource]
    LABEL_SOURCE_ORACLE: _ClassVar[LabelSource]
    LABEL_SOURCE_HUMAN: _ClassVar[LabelSource]
    LABEL_SOURCE_REVIEW: _ClassVar[LabelSource]

class ClassBalance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLASS_BALANCE_NONE: _ClassVar[ClassBalance]
    CLASS_BALANCE_WEIGHTED_LOSS: _ClassVar[ClassBalance]
    CLASS_BALANCE_SAMPLING: _ClassVar[ClassBalance]

class HeadInit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEAD_INIT_UNSPECIFIED: _ClassVar[HeadInit]
    HEAD_INIT_PROTOTYPE: _ClassVar[HeadInit]
    HEAD_INIT_RANDOM: _ClassVar[HeadInit]

class Pooling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POOLING_UNSPECIFIED: _ClassVar[Pooling]
    POOLING_MEAN: _ClassVar[Pooling]
    POOLING_CLS: _ClassVar[Pooling]

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_AUTO: _ClassVar[Precision]
    PRECISION_FP32: _ClassVar[Precision]
    PRECISION_BF16: _ClassVar[Precision]
    PRECISION_FP16: _ClassVar[Precision]
SPLIT_UNSPECIFIED: Split
SPLIT_TRAIN: Split
SPLIT_TEST: Split
SPLIT_DEV: Split
LABEL_SOURCE_UNSPECIFIED: LabelSource
LABEL_SOURCE_SEED: LabelSource
LABEL_SOURCE_ORACLE: LabelSource
LABEL_SOURCE_HUMAN: LabelSource
LABEL_SOURCE_REVIEW: LabelSource
CLASS_BALANCE_NONE: ClassBalance
CLASS_BALANCE_WEIGHTED_LOSS: ClassBalance
CLASS_BALANCE_SAMPLING: ClassBalance
HEAD_INIT_UNSPECIFIED: HeadInit
HEAD_INIT_PROTOTYPE: HeadInit
HEAD_INIT_RANDOM: HeadInit
POOLING_UNSPECIFIED: Pooling
POOLING_MEAN: Pooling
POOLING_CLS: Pooling
PRECISION_AUTO: Precision
PRECISION_FP32: Precision
PRECISION_BF16: Precision
PRECISION_FP16: Precision

class Sample(_message.Message):
    __slots__ = ("id", "dataset", "text", "split", "label", "row", "gold_label", "annotator", "label_source", "labelled_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    GOLD_LABEL_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    LABEL_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LABELLED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    dataset: str
    text: str
    split: Split
    label: str
    row: int
    gold_label: str
    annotator: str
    label_source: LabelSource
    labelled_at: str
    def __init__(self, id: _Optional[int] = ..., dataset: _Optional[str] = ..., text: _Optional[str] = ..., split: _Optional[_Union[Split, str]] = ..., label: _Optional[str] = ..., row: _Optional[int] = ..., gold_label: _Optional[str] = ..., annotator: _Optional[str] = ..., label_source: _Optional[_Union[LabelSource, str]] = ..., labelled_at: _Optional[str] = ...) -> None: ...

class RandomSubset(_message.Message):
    __slots__ = ("size", "seed")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    size: int
    seed: int
    def __init__(self, size: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class Shard(_message.Message):
    __slots__ = ("index", "count")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    index: int
    count: int
    def __init__(self, index: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class EvalMetrics(_message.Message):
    __slots__ = ("accuracy", "macro_f1", "per_class_f1", "count", "loss")
    class PerClassF1Entry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_F1_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    accuracy: float
    macro_f1: float
    per_class_f1: _containers.ScalarMap[str, float]
    count: int
    loss: float
    def __init__(self, accuracy: _Optional[float] = ..., macro_f1: _Optional[float] = ..., per_class_f1: _Optional[_Mapping[str, float]] = ..., count: _Optional[int] = ..., loss: _Optional[float] = ...) -> None: ...

class ModelComparison(_message.Message):
    __slots__ = ("against", "count", "new_only", "kept_only")
    AGAINST_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    NEW_ONLY_FIELD_NUMBER: _ClassVar[int]
    KEPT_ONLY_FIELD_NUMBER: _ClassVar[int]
    against: str
    count: int
    new_only: int
    kept_only: int
    def __init__(self, against: _Optional[str] = ..., count: _Optional[int] = ..., new_only: _Optional[int] = ..., kept_only: _Optional[int] = ...) -> None: ...

class Hyperparameters(_message.Message):
    __slots__ = ("learning_rate", "batch_size", "max_epochs", "patience", "warmup_ratio", "weight_decay", "max_length", "validation_fraction", "use_labelled_validation", "class_balance", "precision", "num_threads", "max_steps", "min_steps", "min_steps_per_class", "head_init", "holdout_min_per_class", "pooling")
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_RATIO_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    USE_LABELLED_VALIDATION_FIELD_NUMBER: _ClassVar[int]
    CLASS_BALANCE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    NUM_THREADS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MIN_STEPS_FIELD_NUMBER: _ClassVar[int]
    MIN_STEPS_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    HEAD_INIT_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_MIN_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    learning_rate: float
    batch_size: int
    max_epochs: int
    patience: int
    warmup_ratio: float
    weight_decay: float
    max_length: int
    validation_fraction: float
    use_labelled_validation: bool
    class_balance: ClassBalance
    precision: Precision
    num_threads: int
    max_steps: int
    min_steps: int
    min_steps_per_class: int
    head_init: HeadInit
    holdout_min_per_class: int
    pooling: Pooling
    def __init__(self, learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., max_epochs: _Optional[int] = ..., patience: _Optional[int] = ..., warmup_ratio: _Optional[float] = ..., weight_decay: _Optional[float] = ..., max_length: _Optional[int] = ..., validation_fraction: _Optional[float] = ..., use_labelled_validation: bool = ..., class_balance: _Optional[_Union[ClassBalance, str]] = ..., precision: _Optional[_Union[Precision, str]] = ..., num_threads: _Optional[int] = ..., max_steps: _Optional[int] = ..., min_steps: _Optional[int] = ..., min_steps_per_class: _Optional[int] = ..., head_init: _Optional[_Union[HeadInit, str]] = ..., holdout_min_per_class: _Optional[int] = ..., pooling: _Optional[_Union[Pooling, str]] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("checkpoint_id", "latest_of_run", "base_model", "best_of_run", "fast_head")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LATEST_OF_RUN_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    BEST_OF_RUN_FIELD_NUMBER: _ClassVar[int]
    FAST_HEAD_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    latest_of_run: int
    base_model: str
    best_of_run: int
    fast_head: FastHead
    def __init__(self, checkpoint_id: _Optional[str] = ..., latest_of_run: _Optional[int] = ..., base_model: _Optional[str] = ..., best_of_run: _Optional[int] = ..., fast_head: _Optional[_Union[FastHead, _Mapping]] = ...) -> None: ...

class FastHead(_message.Message):
    __slots__ = ("run_id", "base_model", "dataset")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    base_model: str
    dataset: str
    def __init__(self, run_id: _Optional[int] = ..., base_model: _Optional[str] = ..., dataset: _Optional[str] = ...) -> None: ...

class CheckpointManifest(_message.Message):
    __slots__ = ("id", "run_id", "round", "base_model", "labels", "hyperparameters", "validation", "labelled_set_hash", "weights_sha256", "created_at", "dataset", "train_count", "seed", "job_id", "best_epoch", "comparison")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    LABELLED_SET_HASH_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TRAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BEST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: int
    round: int
    base_model: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    hyperparameters: Hyperparameters
    validation: EvalMetrics
    labelled_set_hash: str
    weights_sha256: str
    created_at: str
    dataset: str
    train_count: int
    seed: int
    job_id: str
    best_epoch: int
    comparison: ModelComparison
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[int] = ..., round: _Optional[int] = ..., base_model: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., validation: _Optional[_Union[EvalMetrics, _Mapping]] = ..., labelled_set_hash: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., created_at: _Optional[str] = ..., dataset: _Optional[str] = ..., train_count: _Optional[int] = ..., seed: _Optional[int] = ..., job_id: _Optional[str] = ..., best_epoch: _Optional[int] = ..., comparison: _Optional[_Union[ModelComparison, _Mapping]] = ...) -> None: ...
