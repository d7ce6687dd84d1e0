from lesslabels.v1 import run_pb2 as _run_pb2
from lesslabels.v1 import pool_pb2 as _pool_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartRunRequest(_message.Message):
    __slots__ = ("config", "request_id")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    config: _run_pb2.RunConfig
    request_id: str
    def __init__(self, config: _Optional[_Union[_run_pb2.RunConfig, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run", "round", "step_progress", "message", "progress")
    RUN_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STEP_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    run: _run_pb2.Run
    round: _run_pb2.Round
    step_progress: float
    message: str
    progress: StepProgress
    def __init__(self, run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., round: _Optional[_Union[_run_pb2.Round, _Mapping]] = ..., step_progress: _Optional[float] = ..., message: _Optional[str] = ..., progress: _Optional[_Union[StepProgress, _Mapping]] = ...) -> None: ...

class StepProgress(_message.Message):
    __slots__ = ("unit", "done", "total", "per_second", "samples_per_second", "elapsed_seconds", "eta_seconds")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    unit: str
    done: int
    total: int
    per_second: float
    samples_per_second: float
    elapsed_seconds: float
    eta_seconds: float
    def __init__(self, unit: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., per_second: _Optional[float] = ..., samples_per_second: _Optional[float] = ..., elapsed_seconds: _Optional[float] = ..., eta_seconds: _Optional[float] = ...) -> None: ...

class RunDetail(_message.Message):
    __slots__ = ("run", "rounds", "message", "progress")
    RUN_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    run: _run_pb2.Run
    rounds: _containers.RepeatedCompositeFieldContainer[_run_pb2.Round]
    message: str
    progress: StepProgress
    def __init__(self, run: _Optional[_Union[_run_pb2.Run, _Mapping]] = ..., rounds: _Optional[_Iterable[_Union[_run_pb2.Round, _Mapping]]] = ..., message: _Optional[str] = ..., progress: _Optional[_Union[StepProgress, _Mapping]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class ResumeRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class GetPendingLabelsRequest(_message.Message):
    __slots__ = ("run_id", "annotator")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    annotator: str
    def __init__(self, run_id: _Optional[int] = ..., annotator: _Optional[str] = ...) -> None: ...

class PendingSample(_message.Message):
    __slots__ = ("sample_id", "text", "score", "label")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    sample_id: int
    text: str
    score: float
    label: str
    def __init__(self, sample_id: _Optional[int] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., label: _Optional[str] = ...) -> None: ...

class PendingLabels(_message.Message):
    __slots__ = ("run_id", "round", "labels", "samples", "remaining")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    round: int
    labels: _containers.RepeatedScalarFieldContainer[str]
    samples: _containers.RepeatedCompositeFieldContainer[PendingSample]
    remaining: int
    def __init__(self, run_id: _Optional[int] = ..., round: _Optional[int] = ..., labels: _Optional[_Iterable[str]] = ..., samples: _Optional[_Iterable[_Union[PendingSample, _Mapping]]] = ..., remaining: _Optional[int] = ...) -> None: ...

class SubmitRunLabelsRequest(_message.Message):
    __slots__ = ("run_id", "labels", "annotator", "idempotency_key")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATOR_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    labels: _containers.RepeatedCompositeFieldContainer[_pool_pb2.LabelAssignment]
    annotator: str
    idempotency_key: str
    def __init__(self, run_id: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[_pool_pb2.LabelAssignment, _Mapping]]] = ..., annotator: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitRunLabelsResponse(_message.Message):
    __slots__ = ("result", "remaining")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    result: _pool_pb2.SubmitLabelsResponse
    remaining: int
    def __init__(self, result: _Optional[_Union[_pool_pb2.SubmitLabelsResponse, _Mapping]] = ..., remaining: _Optional[int] = ...) -> None: ...
