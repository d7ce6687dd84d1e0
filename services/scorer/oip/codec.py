"""The Open Inference Protocol's messages, converted at the edge: the request's BYTES texts and
requested outputs in, the scores as raw little-endian output tensors out, and a checkpoint's model
config and the inference statistics as protobuf. Knows nothing of how a model is found or run."""

from __future__ import annotations

import collections
import dataclasses
import json
import struct

import numpy as np

from lesslabels.common import errors
from lesslabels.common.checkpoints import Checkpoint
from lesslabels.inference import grpc_predict_v2_pb2 as pb
from lesslabels.scorer.limits import check_request_size, text_bytes
from lesslabels.scorer.model_cache import Scores
from lesslabels.scorer.statistics import Duration, ModelStats

INPUT_NAME = "text"
OUTPUTS = ("probabilities", "entropy", "margin", "least_confidence", "ratio", "predicted_label", "truncated")
_DATATYPES = {name: "FP32" for name in OUTPUTS[:5]} | {"predicted_label": "BYTES", "truncated": "BOOL"}
# Parameters the scorer understands. Request-level: none. Inputs: the KServe client's
# binary_data_size (the raw tensor's length, sent with every raw input). Outputs: Triton's
# classification (top-k) and KServe's binary_data (outputs are always raw here).
REQUEST_PARAMETERS: frozenset[str] = frozenset()
INPUT_PARAMETERS = frozenset({"binary_data_size"})
OUTPUT_PARAMETERS = frozenset({"classification", "binary_data"})
_LEN = struct.Struct("<I")


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


def request_bytes(request: pb.ModelInferRequest) -> int:
    """Bytes of the texts ``request`` carries (raw and typed BYTES contents), for the in-flight
    budget: read an element at a time, never by serializing the message (``ByteSize()``)."""
    return text_bytes(request.raw_input_contents) + sum(text_bytes(t.contents.bytes_contents) for t in request.inputs)


def _has_contents(contents: pb.InferTensorContents) -> bool:
    """Whether any typed contents are set (counted, not serialized)."""
    return any(len(getattr(contents, field.name)) for field in contents.DESCRIPTOR.fields)


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
        if tensor.HasField("contents") and _has_contents(tensor.contents):
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
        raise errors.InvalidArgument(f"{where}: unknown parameter(s) {errors.quote(unknown)}; {accepted}")


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
        raise errors.InvalidArgument(f"unknown output(s) {errors.quote(unknown)}; this model gives {list(OUTPUTS)}")
    repeated = sorted(n for n, count in collections.Counter(names).items() if count > 1)
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
#: The platform when ONNX Runtime serves the model (the scorer's --runtime onnx: Triton's name for it).
ONNX_PLATFORM = "onnxruntime_onnx"


def platform(runtime: str) -> str:
    """The OIP platform for a LoadedEntry.runtime ("torch", "onnx-int8", "onnx-fp32")."""
    return ONNX_PLATFORM if runtime.startswith("onnx") else PLATFORM


def model_metadata(name: str, versions: list[str], checkpoint: Checkpoint, runtime: str) -> pb.ModelMetadataResponse:
    """``runtime``: what serves the checkpoint (ModelCache.runtime_of), named by ``platform``."""
    meta = pb.ModelMetadataResponse(name=name, versions=versions, platform=platform(runtime))
    inputs, outputs = _tensor_metadata(len(checkpoint.labels))
    for tname, datatype, shape in inputs:
        meta.inputs.add(name=tname, datatype=datatype, shape=shape)
    for tname, datatype, shape in outputs:
        meta.outputs.add(name=tname, datatype=datatype, shape=shape)
    return meta


def model_config(name: str, checkpoint: Checkpoint, runtime: str) -> pb.ModelConfig:
    inputs, outputs = _tensor_metadata(len(checkpoint.labels))
    config = pb.ModelConfig(name=name, platform=platform(runtime), backend="lesslabels", max_batch_size=0)
    for tname, datatype, shape in inputs:
        config.input.add(name=tname, data_type=_CONFIG_TYPES[datatype], dims=shape)
    for tname, datatype, shape in outputs:
        config.output.add(name=tname, data_type=_CONFIG_TYPES[datatype], dims=shape)
    config.parameters["labels"].string_value = json.dumps(checkpoint.labels)
    config.parameters["checkpoint_id"].string_value = checkpoint.id
    config.parameters["run_id"].string_value = str(checkpoint.run_id)
    config.parameters["runtime"].string_value = runtime
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
