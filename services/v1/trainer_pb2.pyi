from lesslabels.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_INTERRUPTED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_INTERRUPTED: JobState

class StartTrainingRequest(_message.Message):
    __slots__ = ("dataset", "run_id", "round", "base_model", "hyperparameters", "seed", "warm_start_checkpoint", "labels", "request_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WARM_START_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    run_id: int
    round: int
    base_model: str
    hyperparameters: _common_pb2.Hyperparameters
    seed: int
    warm_start_checkpoint: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, dataset: _Optional[str] = ..., run_id: _Optional[int] = ..., round: _Optional[int] = ..., base_model: _Optional[str] = ..., hyperparameters: _Optional[_Union[_common_pb2.Hyperparameters, _Mapping]] = ..., seed: _Optional[int] = ..., warm_start_checkpoint: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class TrainJob(_message.Message):
    __slots__ = ("id", "state", "queue_position", "request", "checkpoint_id", "error", "created_at", "started_at", "finished_at", "validation", "device", "comparison")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    queue_position: int
    request: StartTrainingRequest
    checkpoint_id: str
    error: str
    created_at: str
    started_at: str
    finished_at: str
    validation: _common_pb2.EvalMetrics
    device: str
    comparison: _common_pb2.ModelComparison
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., queue_position: _Optional[int] = ..., request: _Optional[_Union[StartTrainingRequest, _Mapping]] = ..., checkpoint_id: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., validation: _Optional[_Union[_common_pb2.EvalMetrics, _Mapping]] = ..., device: _Optional[str] = ..., comparison: _Optional[_Union[_common_pb2.ModelComparison, _Mapping]] = ...) -> None: ...

class TrainProgress(_message.Message):
    __slots__ = ("job_id", "state", "epoch", "step", "total_steps", "loss", "validation", "samples_per_second", "eta_seconds", "message", "checkpoint_id", "queue_position")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    epoch: int
    step: int
    total_steps: int
    loss: float
    validation: _common_pb2.EvalMetrics
    samples_per_second: float
    eta_seconds: float
    message: str
    checkpoint_id: str
    queue_position: int
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., epoch: _Optional[int] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., validation: _Optional[_Union[_common_pb2.EvalMetrics, _Mapping]] = ..., samples_per_second: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., message: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., queue_position: _Optional[int] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainJob, _Mapping]]] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[_common_pb2.CheckpointManifest]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[_common_pb2.CheckpointManifest, _Mapping]]] = ...) -> None: ...

class CheckBaseModelRequest(_message.Message):
    __slots__ = ("base_model", "max_length")
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    base_model: str
    max_length: int
    def __init__(self, base_model: _Optional[str] = ..., max_length: _Optional[int] = ...) -> None: ...

class CheckBaseModelResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("checkpoint_id", "latest_of_run")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LATEST_OF_RUN_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    latest_of_run: int
    def __init__(self, checkpoint_id: _Optional[str] = ..., latest_of_run: _Optional[int] = ...) -> None: ...
