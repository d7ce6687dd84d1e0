"""The Open Inference Protocol (KServe / Triton v2) on the scorer, over real gRPC.

Most tests speak the compiled protocol (lesslabels.inference, the standard package, service and
field numbers) and build the byte layout tritonclient builds (4-byte little-endian
length-prefixed BYTES in raw_input_contents). The real clients run in subprocesses: tritonclient's
stubs and lesslabels.inference both declare the proto package ``inference``, so they cannot share
one process's descriptor pool (tritonclient is in the dev extra and runs from this environment,
or from LESSLABELS_TRITON_PYTHON); the KServe SDK pins many packages and runs from its own
environment (``make kserve-client``, LESSLABELS_KSERVE_PYTHON).
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import tracemalloc
import subprocess
import sys

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lesslabels.common.channels import make_channel
from lesslabels.common import errors
from lesslabels.inference import grpc_predict_v2_pb2 as pb
from lesslabels.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from lesslabels.scorer.oip import codec
from lesslabels.scorer.model_cache import CacheConfig, ModelSpec
from lesslabels.v1 import common_pb2, scorer_pb2, scorer_pb2_grpc
from tests.helpers import server_settings_for_tests
from tests.scorer_checkpoints import LABELS, RUN_ID, TEXTS, publish_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("few_torch_threads")

VERSIONED_RUN = 9


@pytest.fixture(scope="module")
def run_versions(store_and_id, tiny_bert_dir):
    """Three checkpoints of run 9 with different weights: round 0 has the best TEST accuracy,
    round 1 the best validation accuracy (the "best"), round 2 is the latest."""
    store = store_and_id[0]
    metrics = [
        ({"accuracy": 0.6}, {"accuracy": 0.99}),
        ({"accuracy": 0.8}, {"accuracy": 0.1}),
        ({"accuracy": 0.7}, {"accuracy": 0.5}),
    ]
    ids = [
        publish_tiny_checkpoint(
            store,
            tiny_bert_dir,
            run_id=VERSIONED_RUN,
            seed=10 + i,
            manifest_extra={"round": i, "validation": val, "test": test},
        )
        for i, (val, test) in enumerate(metrics)
    ]
    return {"round0": ids[0], "best": ids[1], "latest": ids[2]}


def length_prefixed(texts) -> bytes:
    """The BYTES layout of tritonclient's serialize_byte_tensor."""
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


@pytest.fixture
def oip_server(store_and_id):
    from lesslabels.scorer.main import build_server

    server = build_server(
        server_settings_for_tests(max_message_bytes=256 * 1024),
        str(store_and_id[0].root),
        "",
        cache_config=CacheConfig(max_wait_ms=5),
        max_texts=20,
    )
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
            out[tensor.name] = np.array(codec.decode_bytes_elements(raw), dtype=object).reshape(shape)
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
    assert len(raw.raw_output_contents) == len(raw.outputs) == len(codec.OUTPUTS)
    assert all(not t.HasField("contents") for t in raw.outputs)
    got = _outputs(raw)
    want = server.model_cache.score(ModelSpec(checkpoint_id=checkpoint_id), TEXTS)
    assert got["probabilities"].shape == (len(TEXTS), 3)
    np.testing.assert_allclose(got["probabilities"], want.probabilities, atol=1e-4)
    np.testing.assert_allclose(got["entropy"], want.entropy, atol=1e-4)
    np.testing.assert_allclose(got["margin"], want.margin, atol=1e-4)
    assert [x.decode() for x in got["predicted_label"]] == want.predicted_labels()
    assert got["truncated"].tolist() == [False] * len(TEXTS)

    typed = pb.ModelInferRequest(model_name=f"run-{RUN_ID}")
    typed.inputs.add(
        name="text",
        datatype="BYTES",
        shape=[len(TEXTS), 1],
        contents=pb.InferTensorContents(bytes_contents=[t.encode() for t in TEXTS]),
    )
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
        request.inputs.add(
            name="text", datatype="FP32", shape=[2], contents=pb.InferTensorContents(fp32_contents=[1.0, 2.0])
        )
        return request
    if kind == "shape-mismatch":
        return _raw_request(checkpoint_id, ["a", "b", "c"], shape=[2])
    if kind == "bad-shape":
        return _raw_request(checkpoint_id, ["a", "b"], shape=[1, 2])
    if kind == "typed-count-mismatch":
        request = pb.ModelInferRequest(model_name=checkpoint_id)
        request.inputs.add(
            name="text", datatype="BYTES", shape=[3], contents=pb.InferTensorContents(bytes_contents=[b"a"])
        )
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
    if kind == "unknown-request-parameter":
        request = _raw_request(checkpoint_id, ["a"])
        request.parameters["temperature"].double_param = 0.5
        return request
    if kind == "unknown-input-name":
        request = _raw_request(checkpoint_id, ["a"])
        request.inputs[0].name = "sentence"
        return request
    if kind == "unknown-input-parameter":
        request = _raw_request(checkpoint_id, ["a"])
        request.inputs[0].parameters["shared_memory_region"].string_param = "shm0"
        return request
    if kind == "repeated-output":
        request = _raw_request(checkpoint_id, ["a"])
        request.outputs.add(name="entropy")
        request.outputs.add(name="margin")
        request.outputs.add(name="entropy")
        return request
    if kind == "unknown-output-parameter":
        request = _raw_request(checkpoint_id, ["a"])
        request.outputs.add(name="entropy").parameters["top_p"].double_param = 0.9
        return request
    if kind == "classification-zero":
        request = _raw_request(checkpoint_id, ["a"])
        request.outputs.add(name="probabilities").parameters["classification"].int64_param = 0
        return request
    if kind == "classification-not-integer":
        request = _raw_request(checkpoint_id, ["a"])
        request.outputs.add(name="probabilities").parameters["classification"].string_param = "2"
        return request
    if kind == "classification-of-entropy":
        request = _raw_request(checkpoint_id, ["a"])
        request.outputs.add(name="entropy").parameters["classification"].int64_param = 1
        return request
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("wrong-datatype", "expected BYTES"),
        ("shape-mismatch", "holds 2 element(s) but more were sent"),
        ("bad-shape", "must be [n] or [n, 1]"),
        ("typed-count-mismatch", "holds 3 element(s) but 1"),
        ("length-prefix-too-long", "claims 100 bytes"),
        ("truncated-prefix", "not a 4-byte length prefix"),
        ("raw-and-typed", "both raw and typed"),
        ("two-inputs", "exactly one input"),
        ("not-utf8", "UTF-8"),
        ("unknown-output", "logits"),
        ("unknown-request-parameter", "request: unknown parameter(s) ['temperature']; it accepts none"),
        ("unknown-input-name", "unknown input 'sentence'"),
        ("unknown-input-parameter", "input 'text': unknown parameter(s) ['shared_memory_region']"),
        ("repeated-output", "output(s) ['entropy'] requested more than once"),
        ("unknown-output-parameter", "output 'entropy': unknown parameter(s) ['top_p']"),
        ("classification-zero", "classification must be at least 1"),
        ("classification-not-integer", "classification must be an integer"),
        ("classification-of-entropy", "classification applies to 'probabilities' only"),
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


def test_thousands_of_unknown_parameters_or_outputs_get_a_short_invalid_argument(oip_server):
    """Finding F6: 2,000 unknown parameters were all listed in the message, which then overflowed
    the caller's 8 KiB limit on trailers and came back as RESOURCE_EXHAUSTED."""
    _, channel, checkpoint_id, _ = oip_server
    many_parameters = _raw_request(checkpoint_id, ["a"])
    for i in range(2_000):
        many_parameters.parameters[f"unknown_parameter_{i:04d}"].bool_param = True
    many_outputs = _raw_request(checkpoint_id, ["a"])
    for i in range(2_000):
        many_outputs.outputs.add(name=f"unknown_output_{i:04d}")
    for request, fragment in (
        (many_parameters, "request: unknown parameter(s) ['unknown_parameter_0000', "),
        (many_outputs, "unknown output(s) ['unknown_output_0000', "),
    ):
        with pytest.raises(grpc.RpcError) as info:
            _stub(channel).ModelInfer(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert fragment in info.value.details() and "(2000 items)" in info.value.details()
        assert len(info.value.details()) < 400
    _assert_serving_and_working(channel, checkpoint_id)


def _assert_serving_and_working(channel, checkpoint_id):
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    reply = _stub(channel).ModelInfer(_raw_request(checkpoint_id, ["still fine"]), timeout=30)
    assert _outputs(reply)["probabilities"].shape == (1, 3)


def _infer(stub, model, texts, version="", outputs=()):
    request = _raw_request(model, texts, model_version=version)
    for name in outputs:
        request.outputs.add(name=name)
    return stub.ModelInfer(request, timeout=30)


def test_model_version_selects_the_checkpoint(oip_server, run_versions):
    server, channel, checkpoint_id, _ = oip_server
    stub = _stub(channel)
    model = f"run-{VERSIONED_RUN}"
    for version, want in [
        ("", "latest"),
        ("latest", "latest"),
        ("best", "best"),
        (run_versions["round0"], "round0"),
        (run_versions["best"], "best"),
    ]:
        reply = _infer(stub, model, TEXTS, version)
        assert reply.model_version == run_versions[want] == reply.parameters["checkpoint_id"].string_param, version
        expected = server.model_cache.score(ModelSpec(checkpoint_id=run_versions[want]), TEXTS).probabilities
        np.testing.assert_allclose(_outputs(reply)["probabilities"], expected, atol=1e-4)
    # Different versions really are different models (different weights, different scores).
    first = _outputs(_infer(stub, model, TEXTS, run_versions["round0"]))["probabilities"]
    best = _outputs(_infer(stub, model, TEXTS, "best"))["probabilities"]
    assert np.abs(first - best).max() > 1e-3
    # A checkpoint id as model name has one version: itself.
    assert _infer(stub, checkpoint_id, ["x"], checkpoint_id).model_version == checkpoint_id


def test_best_of_run_in_the_scorer_api(oip_server, run_versions):
    _, channel, _, _ = oip_server
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    reply = stub.Score(
        scorer_pb2.ScoreRequest(model=common_pb2.ModelRef(best_of_run=VERSIONED_RUN), texts=["x"]), timeout=30
    )
    assert reply.checkpoint_id == run_versions["best"]  # best validation, not best test (round 0) nor latest
    # Run 7's one checkpoint has no validation metrics: its best is its latest.
    _, _, only_checkpoint, _ = oip_server
    reply = stub.Score(scorer_pb2.ScoreRequest(model=common_pb2.ModelRef(best_of_run=RUN_ID), texts=["x"]), timeout=30)
    assert reply.checkpoint_id == only_checkpoint


@pytest.mark.parametrize("version", ["nope", "../../etc/passwd", "other-run", "LATEST"])
def test_unknown_versions_are_not_found_and_name_no_path(oip_server, run_versions, version):
    server, channel, checkpoint_id, _ = oip_server
    stub = _stub(channel)
    version = checkpoint_id if version == "other-run" else version  # a checkpoint of run 7, not of run 9
    root = str(server.model_cache.store.root)
    calls = [
        lambda: _infer(stub, f"run-{VERSIONED_RUN}", ["x"], version),
        lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name=f"run-{VERSIONED_RUN}", version=version), timeout=30),
        lambda: stub.ModelConfig(pb.ModelConfigRequest(name=f"run-{VERSIONED_RUN}", version=version), timeout=30),
        lambda: _infer(stub, run_versions["best"], ["x"], run_versions["latest"]),  # another checkpoint's id
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "has no version" in info.value.details() and root not in info.value.details()
    assert not stub.ModelReady(pb.ModelReadyRequest(name=f"run-{VERSIONED_RUN}", version=version), timeout=30).ready


@pytest.mark.parametrize("model", ["ghost", "../../etc", "run-4242"])
def test_unknown_models_name_no_server_path(oip_server, model):
    server, channel, _, _ = oip_server
    with pytest.raises(grpc.RpcError) as info:
        _infer(_stub(channel), model, ["x"])
    assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert str(server.model_cache.store.root) not in info.value.details()


def test_unloadable_checkpoint_error_names_no_path(oip_server, tiny_bert_dir):
    server, channel, _, _ = oip_server
    store = server.model_cache.store
    broken = publish_tiny_checkpoint(store, tiny_bert_dir, run_id=77)
    (store.get(broken).path / "config.json").unlink()  # weights intact, the model cannot be built
    with pytest.raises(grpc.RpcError) as info:
        _infer(_stub(channel), broken, ["x"])
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cannot be loaded" in info.value.details() and str(store.root) not in info.value.details()


def test_ready_metadata_and_config_answer_from_manifests_without_loading(oip_server, run_versions):
    server, channel, _, _ = oip_server
    cache, stub = server.model_cache, _stub(channel)
    assert cache.loaded() == []
    model = f"run-{VERSIONED_RUN}"
    for version in ("", "latest", "best", run_versions["round0"]):
        assert stub.ModelReady(pb.ModelReadyRequest(name=model, version=version), timeout=30).ready
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=model, version="best"), timeout=30)
    assert set(meta.versions) == set(run_versions.values()) and meta.versions[0] == run_versions["latest"]
    assert {t.name: list(t.shape) for t in meta.outputs}["probabilities"] == [-1, 3]
    config = stub.ModelConfig(pb.ModelConfigRequest(name=model, version="best"), timeout=30).config
    assert config.name == model and config.max_batch_size == 0
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [("text", pb.TYPE_STRING, [-1])]
    outputs = {o.name: (o.data_type, list(o.dims)) for o in config.output}
    assert outputs["probabilities"] == (pb.TYPE_FP32, [-1, 3]) and outputs["truncated"] == (pb.TYPE_BOOL, [-1])
    assert json.loads(config.parameters["labels"].string_value) == LABELS
    assert config.parameters["checkpoint_id"].string_value == run_versions["best"]
    assert cache.loaded() == []  # nothing was loaded by the probes
    # ...and with a model loaded, they load nothing more and evict nothing.
    _infer(stub, model, ["x"], "best")
    keys = [e.key for e in cache.loaded()]
    for version in ("latest", run_versions["round0"]):
        stub.ModelReady(pb.ModelReadyRequest(name=model, version=version), timeout=30)
        stub.ModelMetadata(pb.ModelMetadataRequest(name=model, version=version), timeout=30)
    assert [e.key for e in cache.loaded()] == keys


def test_classification_returns_top_k_strings_as_triton(oip_server):
    server, channel, checkpoint_id, _ = oip_server
    stub = _stub(channel)
    want = server.model_cache.score(ModelSpec(checkpoint_id=checkpoint_id), TEXTS).probabilities  # [n, 3]
    for k, width in [(2, 2), (1, 1), (10, 3)]:  # more than the classes: all of them, as Triton
        request = _raw_request(checkpoint_id, TEXTS)
        request.outputs.add(name="probabilities").parameters["classification"].int64_param = k
        request.outputs.add(name="entropy")
        reply = stub.ModelInfer(request, timeout=30)
        assert [(t.name, t.datatype, list(t.shape)) for t in reply.outputs] == [
            ("probabilities", "BYTES", [len(TEXTS), width]),
            ("entropy", "FP32", [len(TEXTS)]),
        ]
        rows = np.array(codec.decode_bytes_elements(reply.raw_output_contents[0]), dtype=object).reshape(
            len(TEXTS), width
        )
        for row, probs in zip(rows, want, strict=False):
            parts = [r.decode().split(":") for r in row]
            order = np.argsort(-probs, kind="stable")[:width]
            assert [int(p[1]) for p in parts] == order.tolist()
            assert [p[2] for p in parts] == [LABELS[i] for i in order]
            assert [p[0] for p in parts] == [f"{probs[i]:.6f}" for i in order]


def test_model_statistics_count_inferences_per_model(oip_server, run_versions):
    _, channel, checkpoint_id, _ = oip_server
    stub = _stub(channel)
    model = f"run-{VERSIONED_RUN}"
    _infer(stub, model, TEXTS[:3], "best")
    _infer(stub, model, TEXTS[:2], "best")
    _infer(stub, model, ["x"])  # latest
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(_bad("repeated-output", model), timeout=30)  # a failure, on the latest
    best = stub.ModelStatistics(pb.ModelStatisticsRequest(name=model, version="best"), timeout=30).model_stats
    assert len(best) == 1 and best[0].version == run_versions["best"]
    assert (best[0].inference_count, best[0].execution_count) == (5, 2)
    assert best[0].inference_stats.success.count == 2 and best[0].inference_stats.success.ns > 0
    assert best[0].inference_stats.compute_infer.count == 2 and best[0].inference_stats.fail.count == 0
    assert best[0].last_inference > 1_600_000_000_000  # milliseconds since the epoch
    latest = stub.ModelStatistics(pb.ModelStatisticsRequest(name=model, version="latest"), timeout=30).model_stats[0]
    assert (latest.inference_count, latest.inference_stats.fail.count) == (1, 1)
    every = stub.ModelStatistics(pb.ModelStatisticsRequest(), timeout=30).model_stats
    assert {(s.name, s.version) for s in every} == {(model, run_versions["best"]), (model, run_versions["latest"])}
    unused = stub.ModelStatistics(pb.ModelStatisticsRequest(name=checkpoint_id), timeout=30).model_stats
    assert [(s.name, s.version, s.inference_count) for s in unused] == [(checkpoint_id, checkpoint_id, 0)]
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelStatistics(pb.ModelStatisticsRequest(name="ghost"), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_liveness_and_readiness_need_no_token(store_and_id):
    from lesslabels.scorer.main import build_server

    server = build_server(server_settings_for_tests(token="s3cret"), str(store_and_id[0].root), "")
    port = server.start()
    server.set_serving()
    try:
        with make_channel(f"127.0.0.1:{port}") as channel:  # no token
            stub = _stub(channel)
            assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
            assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
            for call in (
                lambda: stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10),
                lambda: stub.ModelReady(pb.ModelReadyRequest(name=store_and_id[1]), timeout=10),
                lambda: _infer(stub, store_and_id[1], ["x"]),
            ):
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with make_channel(f"127.0.0.1:{port}", token="s3cret") as channel:
            assert _stub(channel).ModelReady(pb.ModelReadyRequest(name=store_and_id[1]), timeout=10).ready
    finally:
        server.stop(0)


def test_decode_bytes_elements_round_trip():
    texts = ["", "a", "ünïcode ✓", "x" * 1000]
    assert [e.decode() for e in codec.decode_bytes_elements(codec.encode_bytes_elements(texts))] == texts
    assert codec.decode_bytes_elements(b"") == []


def test_raw_bytes_decoding_stops_at_the_declared_shape():
    """60 MiB of empty elements under shape [1] (decoded in full before the count check, about
    703 MiB more memory and 30 s) is refused after the first element, allocating next to nothing."""
    raw = b"\x00\x00\x00\x00" * (15 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(
            errors.InvalidArgument, match=r"the shape holds 1 element\(s\) but more were sent \(62914556 byte\(s\)"
        ):
            codec.decode_bytes_elements(raw, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    assert codec.decode_bytes_elements(codec.encode_bytes_elements(["a", "b"]), 2) == [b"a", b"b"]


_TRITON_CLIENT_SCRIPT = r"""
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

url, model, best, round0 = sys.argv[1:5]
client = grpcclient.InferenceServerClient(url=url)
out = {"live": client.is_server_live(), "ready": client.is_server_ready(), "model_ready": client.is_model_ready(model),
       "best_ready": client.is_model_ready(model, "best"), "nope_ready": client.is_model_ready(model, "nope")}
meta = client.get_model_metadata(model, as_json=True)
out["inputs"] = [(t["name"], t["datatype"]) for t in meta["inputs"]]
out["versions"] = meta["versions"]
config = client.get_model_config(model, "best", as_json=True)["config"]
out["config_inputs"] = [(t["name"], t["data_type"]) for t in config["input"]]
out["config_checkpoint"] = config["parameters"]["checkpoint_id"]["string_value"]
text = grpcclient.InferInput("text", [3], "BYTES")
text.set_data_from_numpy(np.array([b"flights to boston", b"", "caf\u00e9".encode()], dtype=object))
result = client.infer(model, [text], model_version=round0,
                      outputs=[grpcclient.InferRequestedOutput("probabilities"), grpcclient.InferRequestedOutput("entropy")])
out["round0_version"] = result.get_response().model_version
out["probabilities"] = result.as_numpy("probabilities").tolist()
out["entropy"] = result.as_numpy("entropy").tolist()
top = client.infer(model, [text], model_version="best",
                   outputs=[grpcclient.InferRequestedOutput("probabilities", class_count=2)])
out["best_version"] = top.get_response().model_version
out["top2"] = [[x.decode() for x in row] for row in top.as_numpy("probabilities")]
stats = client.get_inference_statistics(model, "best", as_json=True)["model_stats"]
out["stats"] = [(s["version"], s.get("inference_count", "0"), s.get("execution_count", "0")) for s in stats]
for key, call in [("unknown_model", lambda: client.infer("no-such-model", [text])),
                  ("unknown_version", lambda: client.infer(model, [text], model_version="nope"))]:
    try:
        call()
        out[key] = "no error"
    except InferenceServerException as exc:
        out[key] = [exc.status(), exc.message()]
print(json.dumps(out))
"""


def _client_python(env_var: str, module: str) -> str:
    """This interpreter when ``module`` is installed here (found without importing it), else
    the one ``env_var`` names."""
    if importlib.util.find_spec(module) is not None:
        return sys.executable
    return os.environ.get(env_var, "")


def _run_client(python: str, script: str, *args: str) -> dict:
    done = subprocess.run([python, "-c", script, *args], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_with_real_tritonclient(oip_server, run_versions):
    """tritonclient[grpc] (the dev extra) in a subprocess; or LESSLABELS_TRITON_PYTHON's."""
    python = _client_python("LESSLABELS_TRITON_PYTHON", "tritonclient")
    if not python:
        pytest.skip("tritonclient[grpc] is not installed here and LESSLABELS_TRITON_PYTHON is not set")
    server, _, _, port = oip_server
    model = f"run-{VERSIONED_RUN}"
    got = _run_client(
        python, _TRITON_CLIENT_SCRIPT, f"127.0.0.1:{port}", model, run_versions["best"], run_versions["round0"]
    )
    assert got["live"] and got["ready"] and got["model_ready"] and got["best_ready"] and not got["nope_ready"]
    assert got["inputs"] == [["text", "BYTES"]] and set(got["versions"]) == set(run_versions.values())
    assert got["config_inputs"] == [["text", "TYPE_STRING"]] and got["config_checkpoint"] == run_versions["best"]
    texts = ["flights to boston", "", "café"]
    assert got["round0_version"] == run_versions["round0"]
    want = server.model_cache.score(ModelSpec(checkpoint_id=run_versions["round0"]), texts)
    np.testing.assert_allclose(np.array(got["probabilities"]), want.probabilities, atol=1e-4)
    np.testing.assert_allclose(np.array(got["entropy"]), want.entropy, atol=1e-4)
    best = server.model_cache.score(ModelSpec(checkpoint_id=run_versions["best"]), texts).probabilities
    assert got["best_version"] == run_versions["best"]
    assert got["top2"] == codec.classification_strings(best, LABELS, 2)
    assert got["stats"] == [[run_versions["best"], "3", "1"]]
    assert got["unknown_model"][0] == "StatusCode.NOT_FOUND"
    assert got["unknown_version"][0] == "StatusCode.NOT_FOUND" and "has no version 'nope'" in got["unknown_version"][1]


_KSERVE_CLIENT_SCRIPT = r"""
import asyncio, json, sys
import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as kpb

url, model, best, round0 = sys.argv[1:5]


async def main():
    out = {}
    async with InferenceGRPCClient(url, retries=0) as client:
        out["live"] = await client.is_server_live()
        out["ready"] = await client.is_server_ready()
        out["model_ready"] = await client.is_model_ready(model)
        # The KServe SDK has no metadata call: its own generated stub, on its channel.
        meta = await client._client_stub.ModelMetadata(kpb.ModelMetadataRequest(name=model, version="best"), timeout=30)
        out["versions"] = list(meta.versions)
        out["inputs"] = [(t.name, t.datatype) for t in meta.inputs]

        def request(version, outputs):
            text = InferInput("text", [3], "BYTES")
            text.set_data_from_numpy(np.array([b"flights to boston", b"", "caf\u00e9".encode()], dtype=object))
            return InferRequest(model_name=model, infer_inputs=[text], model_version=version, request_outputs=outputs)

        reply = await client.infer(request(round0, [RequestedOutput("probabilities"), RequestedOutput("entropy")]))
        out["round0_version"] = reply.model_version
        out["probabilities"] = reply.outputs[0].as_numpy().tolist()
        out["entropy"] = reply.outputs[1].as_numpy().tolist()
        top = await client.infer(request("best", [RequestedOutput("probabilities", parameters={"classification": 2})]))
        out["best_version"] = top.model_version
        out["top2"] = [[x.decode() if isinstance(x, bytes) else x for x in row] for row in top.outputs[0].as_numpy()]
        try:
            await client.infer(request("nope", None))
            out["unknown_version"] = "no error"
        except grpc.aio.AioRpcError as exc:
            out["unknown_version"] = [exc.code().name, exc.details()]
    print(json.dumps(out))


asyncio.run(main())
"""


def test_with_real_kserve_client(oip_server, run_versions):
    """The KServe SDK's InferenceGRPCClient, from its own environment (``make kserve-client``
    builds .venv-kserve; LESSLABELS_KSERVE_PYTHON names its python)."""
    python = _client_python("LESSLABELS_KSERVE_PYTHON", "kserve")
    if not python:
        pytest.skip("set LESSLABELS_KSERVE_PYTHON to a python with kserve installed (make kserve-client)")
    server, _, _, port = oip_server
    model = f"run-{VERSIONED_RUN}"
    got = _run_client(
        python, _KSERVE_CLIENT_SCRIPT, f"127.0.0.1:{port}", model, run_versions["best"], run_versions["round0"]
    )
    assert got["live"] and got["ready"] and got["model_ready"]
    assert set(got["versions"]) == set(run_versions.values()) and got["inputs"] == [["text", "BYTES"]]
    texts = ["flights to boston", "", "café"]
    assert got["round0_version"] == run_versions["round0"]
    want = server.model_cache.score(ModelSpec(checkpoint_id=run_versions["round0"]), texts)
    np.testing.assert_allclose(np.array(got["probabilities"]), want.probabilities, atol=1e-4)
    np.testing.assert_allclose(np.array(got["entropy"]), want.entropy, atol=1e-4)
    best = server.model_cache.score(ModelSpec(checkpoint_id=run_versions["best"]), texts).probabilities
    assert got["best_version"] == run_versions["best"]
    assert got["top2"] == codec.classification_strings(best, LABELS, 2)
    assert got["unknown_version"][0] == "NOT_FOUND" and "has no version 'nope'" in got["unknown_version"][1]
