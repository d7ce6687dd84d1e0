"""The Open Inference Protocol (KServe / Triton v2) on the scorer, over real gRPC.

tritonclient[grpc] pins protobuf<7 while this project uses protobuf 7, so these tests speak the
compiled protocol (protos/inference/grpc_predict_v2.proto, the same field numbers tritonclient
uses) and build the byte layout tritonclient builds (4-byte little-endian length-prefixed BYTES
in raw_input_contents). If tritonclient is importable, the last test also uses it for real.
"""

from __future__ import annotations

import json
import struct

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lesslabels.common.channels import make_channel
from lesslabels.inference import grpc_predict_v2_pb2 as pb, grpc_predict_v2_pb2_grpc as pb_grpc
from lesslabels.scorer import oip
from lesslabels.scorer.engine import EngineConfig, ModelSpec
from tests.conftest import server_settings_for_tests
from tests.test_scorer import LABELS, RUN_ID, TEXTS, _few_threads, store_and_id  # noqa: F401 - fixtures


def length_prefixed(texts) -> bytes:
    """The BYTES layout of tritonclient's serialize_byte_tensor."""
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


@pytest.fixture
def oip_server(store_and_id):
    from lesslabels.scorer.main import build_server

    server = build_server(server_settings_for_tests(max_message_bytes=256 * 1024), str(store_and_id[0].root), "",
                          engine_config=EngineConfig(max_wait_ms=5), max_texts=20)
    port = server.start()
    server.set_serving()
    channel = make_channel(f"127.0.0.1:{port}")
    yield server, channel, store_and_id[1], port
    channel.close()
    server.stop(0)


def _stub(channel):
    return pb_grpc.GRPCInferenceServiceStub(channel)


def _raw_request(model, texts, shape=None, datatype="BYTES", **kw):
    request = pb.ModelInferRequest(model_name=model, id="req-1", **kw)
    request.inputs.add(name="text", datatype=datatype, shape=shape if shape is not None else [len(texts)])
    request.raw_input_contents.append(length_prefixed(texts))
    return request


def _outputs(response) -> dict[str, np.ndarray]:
    """Decode raw_output_contents the way tritonclient's InferResult.as_numpy does."""
    out = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        shape = list(tensor.shape)
        if tensor.datatype == "FP32":
            out[tensor.name] = np.frombuffer(raw, dtype="<f4").reshape(shape)
        elif tensor.datatype == "BOOL":
            out[tensor.name] = np.frombuffer(raw, dtype=np.bool_).reshape(shape)
        elif tensor.datatype == "BYTES":
            out[tensor.name] = np.array(oip.decode_bytes_elements(raw), dtype=object).reshape(shape)
    return out


def test_health_and_metadata(oip_server):
    _, channel, checkpoint_id, _ = oip_server
    stub = _stub(channel)
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    assert stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10).name == "lesslabels-scorer"
    assert stub.ModelReady(pb.ModelReadyRequest(name=checkpoint_id), timeout=30).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name=f"run-{RUN_ID}"), timeout=30).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="no-such-model"), timeout=30).ready
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=checkpoint_id), timeout=30)
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("text", "BYTES", [-1])]
    outputs = {t.name: (t.datatype, list(t.shape)) for t in meta.outputs}
    assert outputs["probabilities"] == ("FP32", [-1, 3]) and outputs["entropy"] == ("FP32", [-1])


def test_server_ready_follows_health(store_and_id):
    from lesslabels.scorer.main import build_server

    server = build_server(server_settings_for_tests(), str(store_and_id[0].root), "")
    port = server.start()
    try:
        with make_channel(f"127.0.0.1:{port}") as channel:
            assert not _stub(channel).ServerReady(pb.ServerReadyRequest(), timeout=10).ready
            server.set_serving()
            assert _stub(channel).ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    finally:
        server.stop(0)


def test_model_infer_raw_and_typed_agree_with_the_engine(oip_server):
    server, channel, checkpoint_id, _ = oip_server
    stub = _stub(channel)
    raw = stub.ModelInfer(_raw_request(checkpoint_id, TEXTS), timeout=30)
    assert raw.id == "req-1" and raw.model_name == checkpoint_id
    assert json.loads(raw.parameters["labels"].string_param) == LABELS
    assert len(raw.raw_output_contents) == len(raw.outputs) == len(oip.OUTPUTS)
    assert all(not t.HasField("contents") for t in raw.outputs)
    got = _outputs(raw)
    want = server.scorer_engine.score(ModelSpec(checkpoint_id=checkpoint_id), TEXTS)
    assert got["probabilities"].shape == (len(TEXTS), 3)
    np.testing.assert_allclose(got["probabilities"], want.probabilities, atol=1e-4)
    np.testing.assert_allclose(got["entropy"], want.entropy, atol=1e-4)
    np.testing.assert_allclose(got["margin"], want.margin, atol=1e-4)
    assert [x.decode() for x in got["predicted_label"]] == want.predicted_labels()
    assert got["truncated"].tolist() == [False] * len(TEXTS)

    typed = pb.ModelInferRequest(model_name=f"run-{RUN_ID}")
    typed.inputs.add(name="text", datatype="BYTES", shape=[len(TEXTS), 1],
                     contents=pb.InferTensorContents(bytes_contents=[t.encode() for t in TEXTS]))
    typed.outputs.add(name="entropy")
    typed.outputs.add(name="probabilities")
    reply = stub.ModelInfer(typed, timeout=30)
    assert [t.name for t in reply.outputs] == ["entropy", "probabilities"]
    np.testing.assert_allclose(_outputs(reply)["probabilities"], got["probabilities"], atol=1e-4)


def test_empty_batch_and_empty_string(oip_server):
    _, channel, checkpoint_id, _ = oip_server
    stub = _stub(channel)
    empty = _outputs(stub.ModelInfer(_raw_request(checkpoint_id, []), timeout=30))
    assert empty["probabilities"].shape == (0, 3) and empty["entropy"].shape == (0,)
    one = _outputs(stub.ModelInfer(_raw_request(checkpoint_id, [""]), timeout=30))
    assert one["probabilities"].shape == (1, 3) and abs(one["probabilities"].sum() - 1) < 1e-5


def _bad(kind, checkpoint_id):
    if kind == "wrong-datatype":
        request = pb.ModelInferRequest(model_name=checkpoint_id)
        request.inputs.add(name="text", datatype="FP32", shape=[2],
                           contents=pb.InferTensorContents(fp32_contents=[1.0, 2.0]))
        return request
    if kind == "shape-mismatch":
        return _raw_request(checkpoint_id, ["a", "b", "c"], shape=[2])
    if kind == "bad-shape":
        return _raw_request(checkpoint_id, ["a", "b"], shape=[1, 2])
    if kind == "typed-count-mismatch":
        request = pb.ModelInferRequest(model_name=checkpoint_id)
        request.inputs.add(name="text", datatype="BYTES", shape=[3],
                           contents=pb.InferTensorContents(bytes_contents=[b"a"]))
        return request
    if kind == "length-prefix-too-long":
        request = _raw_request(checkpoint_id, ["a"], shape=[1])
        request.raw_input_contents[0] = struct.pack("<I", 100) + b"short"
        return request
    if kind == "truncated-prefix":
        request = _raw_request(checkpoint_id, ["abc"], shape=[2])
        request.raw_input_contents[0] += b"\x01\x00"
        return request
    if kind == "raw-and-typed":
        request = _raw_request(checkpoint_id, ["a"])
        request.inputs[0].contents.bytes_contents.append(b"a")
        return request
    if kind == "two-inputs":
        request = _raw_request(checkpoint_id, ["a"])
        request.inputs.add(name="other", datatype="BYTES", shape=[1])
        return request
    if kind == "not-utf8":
        request = _raw_request(checkpoint_id, ["a"])
        request.raw_input_contents[0] = struct.pack("<I", 2) + b"\xff\xfe"
        return request
    if kind == "unknown-output":
        request = _raw_request(checkpoint_id, ["a"])
        request.outputs.add(name="logits")
        return request
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("wrong-datatype", "expected BYTES"),
        ("shape-mismatch", "holds 2 element(s) but 3"),
        ("bad-shape", "must be [n] or [n, 1]"),
        ("typed-count-mismatch", "holds 3 element(s) but 1"),
        ("length-prefix-too-long", "claims 100 bytes"),
        ("truncated-prefix", "not a 4-byte length prefix"),
        ("raw-and-typed", "both raw and typed"),
        ("two-inputs", "exactly one input"),
        ("not-utf8", "UTF-8"),
        ("unknown-output", "logits"),
    ],
)
def test_malformed_tensors_are_invalid_argument(oip_server, kind, fragment):
    _, channel, checkpoint_id, _ = oip_server
    with pytest.raises(grpc.RpcError) as info:
        _stub(channel).ModelInfer(_bad(kind, checkpoint_id), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in info.value.details()
    _assert_serving_and_working(channel, checkpoint_id)


@pytest.mark.parametrize(
    "kind, code, fragment",
    [
        ("unknown-model", grpc.StatusCode.NOT_FOUND, "ghost"),
        ("unknown-run", grpc.StatusCode.NOT_FOUND, "run 4242"),
        ("too-many-texts", grpc.StatusCode.RESOURCE_EXHAUSTED, "limit is 20"),
        ("over-message-limit", grpc.StatusCode.RESOURCE_EXHAUSTED, "262144"),
    ],
)
def test_unknown_models_and_size_limits(oip_server, kind, code, fragment):
    _, channel, checkpoint_id, _ = oip_server
    request = {
        "unknown-model": lambda: _raw_request("ghost", ["a"]),
        "unknown-run": lambda: _raw_request("run-4242", ["a"]),
        "too-many-texts": lambda: _raw_request(checkpoint_id, ["a"] * 21),
        "over-message-limit": lambda: _raw_request(checkpoint_id, ["z" * 300_000]),
    }[kind]()
    with pytest.raises(grpc.RpcError) as info:
        _stub(channel).ModelInfer(request, timeout=30)
    assert info.value.code() == code
    assert fragment in info.value.details()
    _assert_serving_and_working(channel, checkpoint_id)


def _assert_serving_and_working(channel, checkpoint_id):
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    reply = _stub(channel).ModelInfer(_raw_request(checkpoint_id, ["still fine"]), timeout=30)
    assert _outputs(reply)["probabilities"].shape == (1, 3)


def test_decode_bytes_elements_round_trip():
    texts = ["", "a", "ünïcode ✓", "x" * 1000]
    assert [e.decode() for e in oip.decode_bytes_elements(oip.encode_bytes_elements(texts))] == texts
    assert oip.decode_bytes_elements(b"") == []


def test_with_real_tritonclient(oip_server):
    grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] needs protobuf<7 (not installed)")
    _, _, checkpoint_id, port = oip_server
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    assert client.is_server_live() and client.is_model_ready(checkpoint_id)
    text = grpcclient.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"flights to boston", b""], dtype=object))
    result = client.infer(checkpoint_id, [text])
    assert result.as_numpy("probabilities").shape == (2, 3)
    assert result.as_numpy("entropy").shape == (2,)


_TRITON_CLIENT_SCRIPT = r"""
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient

url, model = sys.argv[1], sys.argv[2]
client = grpcclient.InferenceServerClient(url=url)
out = {"live": client.is_server_live(), "ready": client.is_server_ready(), "model_ready": client.is_model_ready(model)}
meta = client.get_model_metadata(model, as_json=True)
out["inputs"] = [(t["name"], t["datatype"]) for t in meta["inputs"]]
text = grpcclient.InferInput("text", [3], "BYTES")
text.set_data_from_numpy(np.array([b"flights to boston", b"", "caf\u00e9".encode()], dtype=object))
result = client.infer(model, [text], outputs=[grpcclient.InferRequestedOutput("probabilities"),
                                              grpcclient.InferRequestedOutput("entropy")])
out["probabilities"] = result.as_numpy("probabilities").tolist()
out["entropy"] = result.as_numpy("entropy").tolist()
try:
    client.infer("no-such-model", [text])
except Exception as exc:
    out["unknown_model_status"] = exc.status()
print(json.dumps(out))
"""


def test_with_real_tritonclient_in_its_own_environment(oip_server):
    """tritonclient needs protobuf<7, so it lives in a separate virtualenv: point
    LESSLABELS_TRITON_PYTHON at that environment's python (pip install 'tritonclient[grpc]')."""
    import os
    import subprocess

    python = os.environ.get("LESSLABELS_TRITON_PYTHON", "")
    if not python:
        pytest.skip("set LESSLABELS_TRITON_PYTHON to a python with tritonclient[grpc] installed")
    server, _, checkpoint_id, port = oip_server
    done = subprocess.run([python, "-c", _TRITON_CLIENT_SCRIPT, f"127.0.0.1:{port}", checkpoint_id],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["live"] and got["ready"] and got["model_ready"]
    assert got["inputs"] == [["text", "BYTES"]]
    want = server.scorer_engine.score(ModelSpec(checkpoint_id=checkpoint_id), ["flights to boston", "", "café"])
    np.testing.assert_allclose(np.array(got["probabilities"]), want.probabilities, atol=1e-4)
    np.testing.assert_allclose(np.array(got["entropy"]), want.entropy, atol=1e-4)
    assert got["unknown_model_status"] == "StatusCode.NOT_FOUND"
