from lesslabels.v1 import common_pb2 as _common_pb2
from lesslabels.v1 import pool_pb2 as _pool_pb2
from lesslabels.v1 import run_pb2 as _run_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateRunRequest(_message.Message):
    __slots__ = ("config", "request_id")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    config: _run_pb2.RunConfig
    request_id: str
    def __init__(self, config: _Optional[_Union[_run_pb2.RunConfig, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateRunRequest(_message.Message):
    __slots__ = ("run_id", "state", "step", "round", "error", "stop_reason", "expected_step", "expected_round")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STEP_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ROUND_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    state: _run_pb2.RunState
    step: _run_pb2.RunStep
    round: int
    error: str
    stop_reason: str
    expected_step: _run_pb2.RunStep
    expected_round: int
    def __init__(self, run_id: _Optional[int] = ..., state: _Optional[_Union[_run_pb2.RunState, str]] = ..., step: _Optional[_Union[_run_pb2.RunStep, str]] = ..., round: _Optional[int] = ..., error: _Optional[str] = ..., stop_reason: _Optional[str] = ..., expected_step: _Optional[_Union[_run_pb2.RunStep, str]] = ..., expected_round: _Optional[int] = ...) -> None: ...

class ListRoundsRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class ListRoundsResponse(_message.Message):
    __slots__ = ("rounds",)
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    rounds: _containers.RepeatedCompositeFieldContainer[_run_pb2.Round]
    def __init__(self, rounds: _Optional[_Iterable[_Union[_run_pb2.Round, _Mapping]]] = ...) -> None: ...

class ListAcquisitionsRequest(_message.Message):
    __slots__ = ("run_id", "round", "pending_only")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PENDING_ONLY_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    round: int
    pending_only: bool
    def __init__(self, run_id: _Optional[int] = ..., round: _Optional[int] = ..., pending_only: bool = ...) -> None: ...

class ListAcquisitionsResponse(_message.Message):
    __slots__ = ("acquisitions",)
    ACQUISITIONS_FIELD_NUMBER: _ClassVar[int]
    acquisitions: _containers.RepeatedCompositeFieldContainer[_run_pb2.Acquisition]
    def __init__(self, acquisitions: _Optional[_Iterable[_Union[_run_pb2.Acquisition, _Mapping]]] = ...) -> None: ...

class RevealLabelsRequest(_message.Message):
    __slots__ = ("run_id", "sample_ids", "source")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    sample_ids: _containers.RepeatedScalarFieldContainer[int]
    source: _common_pb2.LabelSource
    def __init__(self, run_id: _Optional[int] = ..., sample_ids: _Optional[_Iterable[int]] = ..., source: _Optional[_Union[_common_pb2.LabelSource, str]] = ...) -> None: ...

class RecordStepRequest(_message.Message):
    __slots__ = ("run_id", "expected_step", "expected_round", "round_record", "acquisitions", "acquisition_round", "state", "step", "round", "stop_reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STEP_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ROUND_FIELD_NUMBER: _ClassVar[int]
    ROUND_RECORD_FIELD_NUMBER: _ClassVar[int]
    ACQUISITIONS_FIELD_NUMBER: _ClassVar[int]
    ACQUISITION_ROUND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    expected_step: _run_pb2.RunStep
    expected_round: int
    round_record: _run_pb2.Round
    acquisitions: _containers.RepeatedCompositeFieldContainer[_run_pb2.Acquisition]
    acquisition_round: int
    state: _run_pb2.RunState
    step: _run_pb2.RunStep
    round: int
    stop_reason: str
    def __init__(self, run_id: _Optional[int] = ..., expected_step: _Optional[_Union[_run_pb2.RunStep, str]] = ..., expected_round: _Optional[int] = ..., round_record: _Optional[_Union[_run_pb2.Round, _Mapping]] = ..., acquisitions: _Optional[_Iterable[_Union[_run_pb2.Acquisition, _Mapping]]] = ..., acquisition_round: _Optional[int] = ..., state: _Optional[_Union[_run_pb2.RunState, str]] = ..., step: _Optional[_Union[_run_pb2.RunStep, str]] = ..., round: _Optional[int] = ..., stop_reason: _Optional[str] = ...) -> None: ...
