"""The Open Inference Protocol (KServe / Triton v2 ``inference.GRPCInferenceService``) on the scorer.

Model name = a checkpoint id, or ``run-<id>`` for a run. Version (``model_version``): for a
checkpoint id, "" or the id; for ``run-<id>``, "" or ``latest`` (the run's latest checkpoint),
``best`` (its best by the validation accuracy in the manifests; a tie goes to the later round) or
one of the run's checkpoint ids; anything else is NOT_FOUND. ModelReady, ModelMetadata and
ModelConfig answer from the checkpoint manifests and never load or evict a model.

One BYTES input named ``text`` (the texts, shape ``[n]`` or ``[n, 1]``), typed
(``contents.bytes_contents``) or raw (``raw_input_contents``: each element a 4-byte little-endian
length then its bytes). Outputs are returned in ``raw_output_contents`` (little-endian, row-major):

    probabilities     FP32 [n, n_classes]   (class order in the response parameter "labels", JSON)
    entropy           FP32 [n]
    margin            FP32 [n]
    least_confidence  FP32 [n]
    ratio             FP32 [n]
    predicted_label   BYTES [n]
    truncated         BOOL [n]

Requesting ``probabilities`` with the output parameter ``classification: k`` (Triton's) returns
instead BYTES [n, k] strings ``"score:index:label"``, highest first. Unknown request, input or
output parameters, an input not named ``text`` and an output requested twice are INVALID_ARGUMENT.
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import time

import numpy as np
from lesslabels.common import errors
from lesslabels.common.checkpoints import Checkpoint
from lesslabels.common.server import ServiceRegistration
from lesslabels.inference import grpc_predict_v2_pb2 as pb
from lesslabels.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from lesslabels.scorer.model_cache import ModelSpec, ModelCache, Scores
from lesslabels.scorer.deadline import time_left
from lesslabels.scorer.limits import check_request_size
from lesslabels.scorer.statistics import Duration, InferenceStatistics, ModelStats

SERVER_NAME = "lesslabels-scorer"
SERVER_VERSION = "1"
INPUT_NAME = "text"
OUTPUTS = ("probabilities", "entropy", "margin", "least_confidence", "ratio", "predicted_label", "truncated")
_DATATYPES = {name: "FP32" for name in OUTPUTS[:5]} | {"predicted_label": "BYTES", "truncated": "BOOL"}
_RUN_NAME = re.compile(r"^run-(\d+)$")
LATEST, BEST = "latest", "best"
# Parameters the scorer understands. Request-level: none. Inputs: the KServe client's
# binary_data_size (the raw tensor's length, sent with every raw input). Outputs: Triton's
# classification (top-k) and KServe's binary_data (outputs are always raw here).
REQUEST_PARAMETERS: frozenset[str] = frozenset()
INPUT_PARAMETERS = frozenset({"binary_data_size"})
OUTPUT_PARAMETERS = frozenset({"classification", "binary_data"})
_LEN = struct.Struct("<I")


def spec_from_model_name(name: str) -> ModelSpec:
    """The model an OIP model name names at its default version (``run-<id>``: the latest)."""
    if not name:
        raise errors.InvalidArgument("model name is required (a checkpoint id, or run-<id> for a run)")
    match = _RUN_NAME.match(name)
    if match:
        run_id = int(match.group(1))
        if run_id <= 0:
            raise errors.InvalidArgument(f"model {errors.quote(name)}: run ids are positive")
        return ModelSpec(latest_of_run=run_id)
    return ModelSpec(checkpoint_id=name)


def spec_from_model_version(name: str, version: str) -> ModelSpec:
    """The model ``name`` at ``version``: for a checkpoint id, "" or the id itself; for
    ``run-<id>``, "" or "latest", "best" (by validation metrics), or one of the run's checkpoint
    ids (checked against its manifest by ``resolve_checkpoint``)."""
    spec = spec_from_model_name(name)
    if spec.checkpoint_id:
        if version not in ("", spec.checkpoint_id):
            raise errors.NotFound(
                f"model {errors.quote(name)} has no version {errors.quote(version)} (a checkpoint's only version is its id)"
            )
        return spec
    if version in ("", LATEST):
        return spec
    if version == BEST:
        return ModelSpec(best_of_run=spec.latest_of_run)
    return ModelSpec(checkpoint_id=version)


def resolve_checkpoint(cache: ModelCache, name: str, version: str) -> Checkpoint:
    """The published checkpoint ``name``/``version`` selects, from the manifests (nothing is loaded)."""
    spec = spec_from_model_version(name, version)
    run = _RUN_NAME.match(name)
    if not run or version in ("", LATEST, BEST):
        return cache.checkpoint(spec)  # its NotFound says what is missing (a run's checkpoint, metrics)
    expected = f"versions are {errors.quote(LATEST)}, {errors.quote(BEST)} or the id of one of run {run.group(1)}'s checkpoints"
    try:
        checkpoint = cache.checkpoint(spec)
    except (errors.NotFound, errors.InvalidArgument):
        raise errors.NotFound(
            f"model {errors.quote(name)} has no version {errors.quote(version)}: {expected}"
        ) from None
    if checkpoint.run_id != int(run.group(1)):
        raise errors.NotFound(
            f"model {errors.quote(name)} has no version {errors.quote(version)}: that checkpoint is not one of run {run.group(1)} ({expected})"
        )
    return checkpoint


def decode_bytes_elements(raw: bytes, expected: int | None = None) -> list[bytes]:
    """Split a raw BYTES tensor (4-byte little-endian length, then the bytes, per element). With
    ``expected`` (the count the declared shape holds), decoding stops there: bytes left over are
    refused without being split (60 MiB of empty elements would otherwise become 15 million
    objects before any count check)."""
    view = memoryview(raw)
    out: list[bytes] = []
    offset = 0
    while offset < len(view):
        if expected is not None and len(out) == expected:
            raise errors.InvalidArgument(
                f"raw BYTES tensor: the shape holds {expected} element(s) but more were sent "
                f"({len(view) - offset} byte(s) follow the last of them)"
            )
        if offset + 4 > len(view):
            raise errors.InvalidArgument(
                f"raw BYTES tensor: {len(view) - offset} trailing byte(s) at offset {offset} are not a 4-byte length prefix"
            )
        (size,) = _LEN.unpack_from(view, offset)
        offset += 4
        if offset + size > len(view):
            raise errors.InvalidArgument(
                f"raw BYTES tensor: element {len(out)} claims {size} bytes but only {len(view) - offset} remain"
            )
        out.append(bytes(view[offset : offset + size]))
        offset += size
    return out


def encode_bytes_elements(values) -> bytes:
    parts = []
    for value in values:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        parts.append(_LEN.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def _element_count(shape, max_texts: int) -> int:
    dims = list(shape)
    if not 1 <= len(dims) <= 2 or any(d < 0 for d in dims) or (len(dims) == 2 and dims[1] != 1):
        raise errors.InvalidArgument(f"input {errors.quote(INPUT_NAME)}: shape {dims} must be [n] or [n, 1]")
    check_request_size(dims[0], max_texts)
    return dims[0]


def texts_from_request(request: pb.ModelInferRequest, max_texts: int) -> list[str]:
    """The texts of the single BYTES input, from typed or raw contents, validated against its shape."""
    if len(request.inputs) != 1:
        raise errors.InvalidArgument(f"expected exactly one input (BYTES texts), got {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.name != INPUT_NAME:
        raise errors.InvalidArgument(
            f"unknown input {errors.quote(tensor.name)}: this model takes one BYTES input {errors.quote(INPUT_NAME)}"
        )
    _check_parameters(f"input {errors.quote(tensor.name)}", tensor.parameters, INPUT_PARAMETERS)
    if tensor.datatype != "BYTES":
        raise errors.InvalidArgument(
            f"input {errors.quote(tensor.name)}: datatype {errors.quote(tensor.datatype)}, expected BYTES"
        )
    count = _element_count(tensor.shape, max_texts)
    if request.raw_input_contents:
        if len(request.raw_input_contents) != len(request.inputs):
            raise errors.InvalidArgument(
                f"{len(request.raw_input_contents)} raw_input_contents for {len(request.inputs)} input(s)"
            )
        if tensor.HasField("contents") and tensor.contents.ByteSize():
            raise errors.InvalidArgument(
                f"input {errors.quote(tensor.name)}: both raw and typed contents given; use one"
            )
        elements = decode_bytes_elements(request.raw_input_contents[0], count)
    else:
        elements = list(tensor.contents.bytes_contents)
    if len(elements) != count:
        raise errors.InvalidArgument(
            f"input {errors.quote(tensor.name)}: shape {list(tensor.shape)} holds {count} element(s) but {len(elements)} were sent"
        )
    try:
        return [e.decode("utf-8") for e in elements]
    except UnicodeDecodeError as exc:
        raise errors.InvalidArgument(f"input {errors.quote(tensor.name)}: texts must be UTF-8 ({exc})") from None


def _check_parameters(where: str, given, known: frozenset[str]) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        accepted = f"it accepts {sorted(known)}" if known else "it accepts none"
        raise errors.InvalidArgument(f"{where}: unknown parameter(s) {unknown}; {accepted}")


def check_request_parameters(request: pb.ModelInferRequest) -> None:
    _check_parameters("request", request.parameters, REQUEST_PARAMETERS)


@dataclasses.dataclass(frozen=True)
class OutputRequest:
    name: str
    classification: int = 0  # top-k "score:index:label" strings instead of the tensor (0 = off)


def _classification(name: str, param: pb.InferParameter) -> int:
    which = param.WhichOneof("parameter_choice")
    if which not in ("int64_param", "uint64_param"):
        raise errors.InvalidArgument(
            f"output {errors.quote(name)}: classification must be an integer (top k), got {which}"
        )
    k = getattr(param, which)
    if k < 1:
        raise errors.InvalidArgument(f"output {errors.quote(name)}: classification must be at least 1, got {k}")
    if name != "probabilities":
        raise errors.InvalidArgument(f"output {errors.quote(name)}: classification applies to 'probabilities' only")
    return k


def requested_outputs(request: pb.ModelInferRequest) -> list[OutputRequest]:
    """The outputs asked for (all, in OUTPUTS order, when none), each at most once."""
    if not request.outputs:
        return [OutputRequest(name) for name in OUTPUTS]
    names = [o.name for o in request.outputs]
    unknown = [n for n in names if n not in _DATATYPES]
    if unknown:
        raise errors.InvalidArgument(f"unknown output(s) {unknown}; this model gives {list(OUTPUTS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise errors.InvalidArgument(f"output(s) {repeated} requested more than once")
    out = []
    for output in request.outputs:
        _check_parameters(f"output {errors.quote(output.name)}", output.parameters, OUTPUT_PARAMETERS)
        k = (
            _classification(output.name, output.parameters["classification"])
            if "classification" in output.parameters
            else 0
        )
        out.append(OutputRequest(output.name, k))
    return out


def classification_strings(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[str]]:
    """Triton's classification output: per row the top ``k`` classes (at most all of them), highest
    first, each ``"score:index:label"`` with the score printed as C++ std::to_string does (%f)."""
    k = min(k, len(labels))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]  # [n, k]
    return [[f"{row[i]:f}:{i}:{labels[i]}" for i in top] for row, top in zip(probabilities, order, strict=False)]


def _output_array(output: OutputRequest, scores: Scores) -> tuple[str, list[int], bytes]:
    """(datatype, shape, raw little-endian bytes) of one output."""
    n, name = len(scores), output.name
    if output.classification:
        rows = classification_strings(scores.probabilities, scores.labels, output.classification)
        k = min(output.classification, len(scores.labels))
        return "BYTES", [n, k], encode_bytes_elements(s for row in rows for s in row)
    if name == "probabilities":
        arr = np.ascontiguousarray(scores.probabilities, dtype="<f4")  # [n, c]
        return "FP32", [n, len(scores.labels)], arr.tobytes()
    if name == "predicted_label":
        return "BYTES", [n], encode_bytes_elements(scores.predicted_labels())
    if name == "truncated":
        return "BOOL", [n], np.asarray(scores.truncated, dtype=np.uint8).tobytes()
    values = getattr(scores, name)  # [n]
    return "FP32", [n], np.ascontiguousarray(values, dtype="<f4").tobytes()


def infer_response(
    request: pb.ModelInferRequest, outputs: list[OutputRequest], scores: Scores
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=request.model_name, model_version=scores.checkpoint_id, id=request.id)
    response.parameters["labels"].string_param = json.dumps(scores.labels)
    response.parameters["checkpoint_id"].string_param = scores.checkpoint_id
    for output in outputs:
        datatype, shape, raw = _output_array(output, scores)
        response.outputs.add(name=output.name, datatype=datatype, shape=shape)
        response.raw_output_contents.append(raw)
    return response


def _tensor_metadata(n_classes: int) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
    """(inputs, outputs) as (name, datatype, shape); -1 = any size."""
    inputs = [(INPUT_NAME, "BYTES", [-1])]
    outputs = [(name, _DATATYPES[name], [-1, n_classes] if name == "probabilities" else [-1]) for name in OUTPUTS]
    return inputs, outputs


_CONFIG_TYPES = {"FP32": pb.TYPE_FP32, "BYTES": pb.TYPE_STRING, "BOOL": pb.TYPE_BOOL}
PLATFORM = "pytorch_transformers"


def model_config(name: str, checkpoint: Checkpoint) -> pb.ModelConfig:
    inputs, outputs = _tensor_metadata(len(checkpoint.labels))
    config = pb.ModelConfig(name=name, platform=PLATFORM, backend="lesslabels", max_batch_size=0)
    for tname, datatype, shape in inputs:
        config.input.add(name=tname, data_type=_CONFIG_TYPES[datatype], dims=shape)
    for tname, datatype, shape in outputs:
        config.output.add(name=tname, data_type=_CONFIG_TYPES[datatype], dims=shape)
    config.parameters["labels"].string_value = json.dumps(checkpoint.labels)
    config.parameters["checkpoint_id"].string_value = checkpoint.id
    config.parameters["run_id"].string_value = str(checkpoint.run_id)
    return config


def _duration(d: Duration) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=d.count, ns=d.ns)


def model_statistics_to_proto(stats: ModelStats) -> pb.ModelStatistics:
    return pb.ModelStatistics(
        name=stats.name,
        version=stats.version,
        last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(stats.success), fail=_duration(stats.fail), compute_infer=_duration(stats.compute_infer)
        ),
    )


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self, cache: ModelCache, *, max_texts: int, ready=lambda: True, statistics: InferenceStatistics | None = None
    ):
        self.cache = cache
        self.max_texts = max_texts
        self._ready = ready
        self.statistics = statistics or InferenceStatistics()

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=bool(self._ready()))

    def ModelReady(self, request, context):
        # From the manifests: a probe must not load (or evict) models. An unknown name or version
        # is simply not ready (probes want a boolean).
        if not request.name:
            raise errors.InvalidArgument("model name is required (a checkpoint id, or run-<id> for a run)")
        try:
            checkpoint = resolve_checkpoint(self.cache, request.name, request.version)
        except (errors.NotFound, errors.InvalidArgument, errors.FailedPrecondition):
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=bool(checkpoint.labels))

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])

    def ModelMetadata(self, request, context):
        checkpoint = resolve_checkpoint(self.cache, request.name, request.version)
        versions = [checkpoint.id]
        if _RUN_NAME.match(request.name):  # every checkpoint of the run, newest first
            versions = [c.id for c in self.cache.store.list(checkpoint.run_id)]
        meta = pb.ModelMetadataResponse(name=request.name, versions=versions, platform=PLATFORM)
        inputs, outputs = _tensor_metadata(len(checkpoint.labels))
        for name, datatype, shape in inputs:
            meta.inputs.add(name=name, datatype=datatype, shape=shape)
        for name, datatype, shape in outputs:
            meta.outputs.add(name=name, datatype=datatype, shape=shape)
        return meta

    def ModelConfig(self, request, context):
        checkpoint = resolve_checkpoint(self.cache, request.name, request.version)
        return pb.ModelConfigResponse(config=model_config(request.name, checkpoint))

    def ModelStatistics(self, request, context):
        if not request.name:
            if request.version:
                raise errors.InvalidArgument("a version needs a model name")
            found = self.statistics.snapshot()
        else:
            checkpoint = resolve_checkpoint(self.cache, request.name, request.version)
            version = checkpoint.id if request.version else ""
            found = self.statistics.snapshot(request.name, version) or [ModelStats(request.name, checkpoint.id)]
        return pb.ModelStatisticsResponse(model_stats=[model_statistics_to_proto(s) for s in found])

    def ModelInfer(self, request, context):
        started = time.perf_counter_ns()
        checkpoint = resolve_checkpoint(self.cache, request.model_name, request.model_version)
        try:
            check_request_parameters(request)
            texts = texts_from_request(request, self.max_texts)
            outputs = requested_outputs(request)
            if not checkpoint.labels:
                raise errors.InvalidArgument(f"model {errors.quote(request.model_name)} has no classification head")
            scoring = time.perf_counter_ns()
            scores = self.cache.score(ModelSpec(checkpoint_id=checkpoint.id), texts, timeout=time_left(context))
            infer_ns = time.perf_counter_ns() - scoring
            response = infer_response(request, outputs, scores)
        except Exception:
            self.statistics.record_failure(request.model_name, checkpoint.id, total_ns=time.perf_counter_ns() - started)
            raise
        self.statistics.record_success(
            request.model_name,
            checkpoint.id,
            texts=len(texts),
            total_ns=time.perf_counter_ns() - started,
            infer_ns=infer_ns,
        )
        return response


def registration(servicer: InferenceServicer) -> ServiceRegistration:
    name = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
    # Liveness and readiness are probes, answered without the bearer token like grpc.health.v1.
    probes = tuple(f"/{name}/{method}" for method in ("ServerLive", "ServerReady"))
    return ServiceRegistration(
        names=(name,),
        register=lambda server: pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server),
        open_methods=probes,
    )
