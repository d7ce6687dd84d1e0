from lesslabels.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_UNSPECIFIED: _ClassVar[Strategy]
    STRATEGY_ENTROPY: _ClassVar[Strategy]
    STRATEGY_MARGIN: _ClassVar[Strategy]
    STRATEGY_LEAST_CONFIDENCE: _ClassVar[Strategy]
    STRATEGY_RATIO: _ClassVar[Strategy]
    STRATEGY_RANDOM: _ClassVar[Strategy]
    STRATEGY_CLUSTERED_ENTROPY: _ClassVar[Strategy]
    STRATEGY_CLUSTERED_MARGIN: _ClassVar[Strategy]

class SeedStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEED_STRATEGY_UNSPECIFIED: _ClassVar[SeedStrategy]
    SEED_STRATEGY_RANDOM: _ClassVar[SeedStrategy]
    SEED_STRATEGY_DIVERSE: _ClassVar[SeedStrategy]

class OracleMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORACLE_MODE_UNSPECIFIED: _ClassVar[OracleMode]
    ORACLE_MODE_SIMULATED: _ClassVar[OracleMode]
    ORACLE_MODE_HUMAN: _ClassVar[OracleMode]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_PENDING: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_WAITING_FOR_LABELS: _ClassVar[RunState]
    RUN_STATE_COMPLETED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]

class RunStep(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STEP_UNSPECIFIED: _ClassVar[RunStep]
    RUN_STEP_SEED: _ClassVar[RunStep]
    RUN_STEP_LABEL: _ClassVar[RunStep]
    RUN_STEP_TRAIN: _ClassVar[RunStep]
    RUN_STEP_EVALUATE: _ClassVar[RunStep]
    RUN_STEP_SCORE: _ClassVar[RunStep]
    RUN_STEP_SELECT: _ClassVar[RunStep]
    RUN_STEP_DONE: _ClassVar[RunStep]
STRATEGY_UNSPECIFIED: Strategy
STRATEGY_ENTROPY: Strategy
STRATEGY_MARGIN: Strategy
STRATEGY_LEAST_CONFIDENCE: Strategy
STRATEGY_RATIO: Strategy
STRATEGY_RANDOM: Strategy
STRATEGY_CLUSTERED_ENTROPY: Strategy
STRATEGY_CLUSTERED_MARGIN: Strategy
SEED_STRATEGY_UNSPECIFIED: SeedStrategy
SEED_STRATEGY_RANDOM: SeedStrategy
SEED_STRATEGY_DIVERSE: SeedStrategy
ORACLE_MODE_UNSPECIFIED: OracleMode
ORACLE_MODE_SIMULATED: OracleMode
ORACLE_MODE_HUMAN: OracleMode
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_PENDING: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_WAITING_FOR_LABELS: RunState
RUN_STATE_COMPLETED: RunState
RUN_STATE_CANCELLED: RunState
RUN_STATE_FAILED: RunState
RUN_STEP_UNSPECIFIED: RunStep
RUN_STEP_SEED: RunStep
RUN_STEP_LABEL: RunStep
RUN_STEP_TRAIN: RunStep
RUN_STEP_EVALUATE: RunStep
RUN_STEP_SCORE: RunStep
RUN_STEP_SELECT: RunStep
RUN_STEP_DONE: RunStep

class Amount(_message.Message):
    __slots__ = ("count", "fraction")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    count: int
    fraction: float
    def __init__(self, count: _Optional[int] = ..., fraction: _Optional[float] = ...) -> None: ...

class StoppingRule(_message.Message):
    __slots__ = ("label_budget", "max_rounds", "target_accuracy", "stable_agreement")
    LABEL_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    STABLE_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    label_budget: Amount
    max_rounds: int
    target_accuracy: float
    stable_agreement: float
    def __init__(self, label_budget: _Optional[_Union[Amount, _Mapping]] = ..., max_rounds: _Optional[int] = ..., target_accuracy: _Optional[float] = ..., stable_agreement: _Optional[float] = ...) -> None: ...

class RunConfig(_message.Message):
    __slots__ = ("dataset", "name", "base_model", "strategy", "seed_size", "seed_strategy", "batch_size", "stopping", "oracle", "random_seed", "hyperparameters", "warm_start", "candidates", "asynchronous", "refill_every", "annotator_seconds", "overlap")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SEED_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    ORACLE_FIELD_NUMBER: _ClassVar[int]
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    WARM_START_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    ASYNCHRONOUS_FIELD_NUMBER: _ClassVar[int]
    REFILL_EVERY_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    base_model: str
    strategy: Strategy
    seed_size: Amount
    seed_strategy: SeedStrategy
    batch_size: Amount
    stopping: StoppingRule
    oracle: OracleMode
    random_seed: int
    hyperparameters: _common_pb2.Hyperparameters
    warm_start: bool
    candidates: int
    asynchronous: bool
    refill_every: int
    annotator_seconds: float
    overlap: float
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., base_model: _Optional[str] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., seed_size: _Optional[_Union[Amount, _Mapping]] = ..., seed_strategy: _Optional[_Union[SeedStrategy, str]] = ..., batch_size: _Optional[_Union[Amount, _Mapping]] = ..., stopping: _Optional[_Union[StoppingRule, _Mapping]] = ..., oracle: _Optional[_Union[OracleMode, str]] = ..., random_seed: _Optional[int] = ..., hyperparameters: _Optional[_Union[_common_pb2.Hyperparameters, _Mapping]] = ..., warm_start: bool = ..., candidates: _Optional[int] = ..., asynchronous: bool = ..., refill_every: _Optional[int] = ..., annotator_seconds: _Optional[float] = ..., overlap: _Optional[float] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "config", "state", "step", "round", "error", "created_at", "updated_at", "labelled_count", "pool_size", "stop_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LABELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    POOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    config: RunConfig
    state: RunState
    step: RunStep
    round: int
    error: str
    created_at: str
    updated_at: str
    labelled_count: int
    pool_size: int
    stop_reason: str
    def __init__(self, id: _Optional[int] = ..., config: _Optional[_Union[RunConfig, _Mapping]] = ..., state: _Optional[_Union[RunState, str]] = ..., step: _Optional[_Union[RunStep, str]] = ..., round: _Optional[int] = ..., error: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., labelled_count: _Optional[int] = ..., pool_size: _Optional[int] = ..., stop_reason: _Optional[str] = ...) -> None: ...

class Round(_message.Message):
    __slots__ = ("run_id", "index", "labelled_count", "train_job_id", "checkpoint_id", "test", "agreement", "selected_count", "started_at", "finished_at", "train_seconds", "score_seconds", "validation", "comparison")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LABELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    SELECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SCORE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    index: int
    labelled_count: int
    train_job_id: str
    checkpoint_id: str
    test: _common_pb2.EvalMetrics
    agreement: float
    selected_count: int
    started_at: str
    finished_at: str
    train_seconds: float
    score_seconds: float
    validation: _common_pb2.EvalMetrics
    comparison: _common_pb2.ModelComparison
    def __init__(self, run_id: _Optional[int] = ..., index: _Optional[int] = ..., labelled_count: _Optional[int] = ..., train_job_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., test: _Optional[_Union[_common_pb2.EvalMetrics, _Mapping]] = ..., agreement: _Optional[float] = ..., selected_count: _Optional[int] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., train_seconds: _Optional[float] = ..., score_seconds: _Optional[float] = ..., validation: _Optional[_Union[_common_pb2.EvalMetrics, _Mapping]] = ..., comparison: _Optional[_Union[_common_pb2.ModelComparison, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("dataset", "states")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    states: _containers.RepeatedScalarFieldContainer[RunState]
    def __init__(self, dataset: _Optional[str] = ..., states: _Optional[_Iterable[_Union[RunState, str]]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class Acquisition(_message.Message):
    __slots__ = ("sample_id", "round", "strategy", "score", "label", "text", "opinions")
    class OpinionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OPINIONS_FIELD_NUMBER: _ClassVar[int]
    sample_id: int
    round: int
    strategy: Strategy
    score: float
    label: str
    text: str
    opinions: _containers.ScalarMap[str, str]
    def __init__(self, sample_id: _Optional[int] = ..., round: _Optional[int] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., score: _Optional[float] = ..., label: _Optional[str] = ..., text: _Optional[str] = ..., opinions: _Optional[_Mapping[str, str]] = ...) -> None: ...
