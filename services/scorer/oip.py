"""The Open Inference Protocol (KServe / Triton v2 ``inference.GRPCInferenceService``) on the scorer.

Model name = a checkpoint id, or ``run-<id>`` for the latest checkpoint of a run. One BYTES input
(the texts, shape ``[n]`` or ``[n, 1]``), typed (``contents.bytes_contents``) or raw
(``raw_input_contents``: each element a 4-byte little-endian length then its bytes). Outputs are
returned in ``raw_output_contents`` (little-endian, row-major):

    probabilities     FP32 [n, n_classes]   (class order in the response parameter "labels", JSON)
    entropy           FP32 [n]
    margin            FP32 [n]
    least_confidence  FP32 [n]
    ratio             FP32 [n]
    predicted_label   BYTES [n]
    truncated         BOOL [n]
"""

from __future__ import annotations

import json
import re
import struct

import numpy as np

from lesslabels.common import errors
from lesslabels.common.server import ServiceRegistration
from lesslabels.inference import grpc_predict_v2_pb2 as pb, grpc_predict_v2_pb2_grpc as pb_grpc
from lesslabels.scorer.engine import ModelSpec, Scores, ScorerEngine
from lesslabels.scorer.servicer import _remaining, check_request_size

SERVER_NAME = "lesslabels-scorer"
SERVER_VERSION = "1"
INPUT_NAME = "text"
OUTPUTS = ("probabilities", "entropy", "margin", "least_confidence", "ratio", "predicted_label", "truncated")
_DATATYPES = {name: "FP32" for name in OUTPUTS[:5]} | {"predicted_label": "BYTES", "truncated": "BOOL"}
_RUN_NAME = re.compile(r"^run-(\d+)$")
_LEN = struct.Struct("<I")


def spec_from_model_name(name: str) -> ModelSpec:
    if not name:
        raise errors.InvalidArgument("model name is required (a checkpoint id, or run-<id> for a run's latest)")
    match = _RUN_NAME.match(name)
    if match:
        run_id = int(match.group(1))
        if run_id <= 0:
            raise errors.InvalidArgument(f"model {name!r}: run ids are positive")
        return ModelSpec(latest_of_run=run_id)
    return ModelSpec(checkpoint_id=name)


def decode_bytes_elements(raw: bytes) -> list[bytes]:
    """Split a raw BYTES tensor (4-byte little-endian length, then the bytes, per element)."""
    view = memoryview(raw)
    out: list[bytes] = []
    offset = 0
    while offset < len(view):
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
        raise errors.InvalidArgument(f"input {INPUT_NAME!r}: shape {dims} must be [n] or [n, 1]")
    check_request_size(dims[0], max_texts)
    return dims[0]


def texts_from_request(request: pb.ModelInferRequest, max_texts: int) -> list[str]:
    """The texts of the single BYTES input, from typed or raw contents, validated against its shape."""
    if len(request.inputs) != 1:
        raise errors.InvalidArgument(f"expected exactly one input (BYTES texts), got {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise errors.InvalidArgument(f"input {tensor.name!r}: datatype {tensor.datatype!r}, expected BYTES")
    count = _element_count(tensor.shape, max_texts)
    if request.raw_input_contents:
        if len(request.raw_input_contents) != len(request.inputs):
            raise errors.InvalidArgument(
                f"{len(request.raw_input_contents)} raw_input_contents for {len(request.inputs)} input(s)"
            )
        if tensor.HasField("contents") and tensor.contents.ByteSize():
            raise errors.InvalidArgument(f"input {tensor.name!r}: both raw and typed contents given; use one")
        elements = decode_bytes_elements(request.raw_input_contents[0])
    else:
        elements = list(tensor.contents.bytes_contents)
    if len(elements) != count:
        raise errors.InvalidArgument(
            f"input {tensor.name!r}: shape {list(tensor.shape)} holds {count} element(s) but {len(elements)} were sent"
        )
    try:
        return [e.decode("utf-8") for e in elements]
    except UnicodeDecodeError as exc:
        raise errors.InvalidArgument(f"input {tensor.name!r}: texts must be UTF-8 ({exc})") from None


def requested_outputs(request: pb.ModelInferRequest) -> list[str]:
    names = [o.name for o in request.outputs] or list(OUTPUTS)
    unknown = [n for n in names if n not in _DATATYPES]
    if unknown:
        raise errors.InvalidArgument(f"unknown output(s) {unknown}; this model gives {list(OUTPUTS)}")
    return names


def _output_array(name: str, scores: Scores) -> tuple[list[int], bytes]:
    n = len(scores)
    if name == "probabilities":
        arr = np.ascontiguousarray(scores.probabilities, dtype="<f4")  # [n, c]
        return [n, len(scores.labels)], arr.tobytes()
    if name == "predicted_label":
        return [n], encode_bytes_elements(scores.predicted_labels())
    if name == "truncated":
        return [n], np.asarray(scores.truncated, dtype=np.uint8).tobytes()
    values = getattr(scores, name)  # [n]
    return [n], np.ascontiguousarray(values, dtype="<f4").tobytes()


def infer_response(request: pb.ModelInferRequest, names: list[str], scores: Scores) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=request.model_name, model_version=scores.checkpoint_id, id=request.id
    )
    response.parameters["labels"].string_param = json.dumps(scores.labels)
    response.parameters["checkpoint_id"].string_param = scores.checkpoint_id
    for name in names:
        shape, raw = _output_array(name, scores)
        response.outputs.add(name=name, datatype=_DATATYPES[name], shape=shape)
        response.raw_output_contents.append(raw)
    return response


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, engine: ScorerEngine, *, max_texts: int, ready=lambda: True):
        self.engine = engine
        self.max_texts = max_texts
        self._ready = ready

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=bool(self._ready()))

    def ModelReady(self, request, context):
        # Ready = loadable now; an unknown model is simply not ready (probes want a boolean).
        try:
            entry = self.engine.load(spec_from_model_name(request.name))
        except errors.NotFound:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=entry.model.is_classifier)

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])

    def ModelMetadata(self, request, context):
        entry = self.engine.load(spec_from_model_name(request.name))
        n_classes = len(entry.labels)
        meta = pb.ModelMetadataResponse(name=request.name, versions=[entry.checkpoint_id], platform="pytorch_transformers")
        meta.inputs.add(name=INPUT_NAME, datatype="BYTES", shape=[-1])
        for name in OUTPUTS:
            meta.outputs.add(name=name, datatype=_DATATYPES[name], shape=[-1, n_classes] if name == "probabilities" else [-1])
        return meta

    def ModelInfer(self, request, context):
        spec = spec_from_model_name(request.model_name)
        texts = texts_from_request(request, self.max_texts)
        names = requested_outputs(request)
        scores = self.engine.score(spec, texts, timeout=_remaining(context))
        if not scores.labels:
            raise errors.InvalidArgument(f"model {request.model_name!r} has no classification head")
        return infer_response(request, names, scores)


def registration(servicer: InferenceServicer) -> ServiceRegistration:
    name = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
    return ServiceRegistration(
        names=(name,), register=lambda server: pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    )
