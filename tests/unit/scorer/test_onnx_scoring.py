"""The scorer with ``--runtime onnx``: checkpoints published with ONNX graphs are served by ONNX Runtime
(int8 with fp32 re-scoring, or fp32 where the int8 graph failed its check), the others by torch;
ListLoaded, the Open Inference Protocol's metadata and the log say which. Over real gRPC."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from lesslabels.common.channels import make_channel
from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.inference import grpc_predict_v2_pb2 as pb
from lesslabels.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from lesslabels.modeling import inference, onnx_runtime
from lesslabels.scorer.model_cache import CacheConfig, ModelCache, ModelSpec, pick_runtime
from lesslabels.v1 import common_pb2, scorer_pb2, scorer_pb2_grpc
from tests.helpers import server_settings_for_tests
from tests.scorer_checkpoints import LABELS, TEXTS, publish_tiny_checkpoint

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("few_torch_threads")

WITH_GRAPHS, FAILED_INT8, WITHOUT = 11, 12, 13


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_bert_dir) -> CheckpointStore:
    """Run 11: a checkpoint with its ONNX graphs; run 12: the same graphs, int8 marked as failed;
    run 13: a checkpoint without graphs (published by a trainer without onnxruntime)."""
    store = CheckpointStore(tmp_path_factory.mktemp("checkpoints"))
    for run in (WITH_GRAPHS, FAILED_INT8, WITHOUT):
        checkpoint = store.get(publish_tiny_checkpoint(store, tiny_bert_dir, run_id=run, pooling="mean"))
        if run == WITHOUT:
            continue
        loaded = inference.load_classifier(checkpoint.path, labels=LABELS, device=torch.device("cpu"), precision="fp32")
        manifest = onnx_runtime.build(loaded, checkpoint.path, TEXTS * 10)
        if run == FAILED_INT8:
            manifest["int8"].update(agreement=0.5, passed=False)
            (checkpoint.path / "onnx" / "manifest.json").write_text(json.dumps(manifest))
    return store


@pytest.fixture
def server(store):
    from lesslabels.scorer.main import build_server

    server = build_server(
        server_settings_for_tests(), str(store.root), "", cache_config=CacheConfig(runtime="onnx", precision="fp32")
    )
    port = server.start()
    server.set_serving()
    channel = make_channel(f"127.0.0.1:{port}")
    yield server, channel
    channel.close()
    server.stop(0)


def score(channel, run: int) -> scorer_pb2.ScoreResponse:
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    request = scorer_pb2.ScoreRequest(model=common_pb2.ModelRef(latest_of_run=run), texts=TEXTS)
    return stub.Score(request, timeout=60)


def probabilities(response) -> np.ndarray:
    return np.array([list(s.probabilities) for s in response.scores])


def test_each_checkpoint_is_served_by_what_it_was_published_with_and_list_loaded_says_which(server, store, caplog):
    _, channel = server
    caplog.set_level(logging.INFO, logger="lesslabels.scorer.model_cache")
    torch_cache = ModelCache(store, CacheConfig(runtime="torch", precision="fp32"))
    try:
        for run in (WITH_GRAPHS, FAILED_INT8, WITHOUT):
            got = probabilities(score(channel, run))
            expected = torch_cache.score(ModelSpec(latest_of_run=run), TEXTS).probabilities
            # int8: the rows whose top probability is below refine_below (0.8) are re-scored in fp32
            exact = (got.max(1) < 0.8) if run == WITH_GRAPHS else np.ones(len(TEXTS), bool)
            assert np.abs(got - expected)[exact].max() < 1e-4
            assert np.abs(got - expected).max() < 0.02
            if run == WITH_GRAPHS:  # the confident rows are the int8 graph's own: close, not equal
                assert exact.any() and np.abs(got - expected)[~exact].max() > 1e-5
    finally:
        torch_cache.close()
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    loaded = stub.ListLoaded(scorer_pb2.ListLoadedRequest(), timeout=10).models
    runtimes = {m.checkpoint_id: m.runtime for m in loaded}
    assert runtimes == {
        store.latest(WITH_GRAPHS).id: "onnx-int8",
        store.latest(FAILED_INT8).id: "onnx-fp32",
        store.latest(WITHOUT).id: "torch",
    }
    assert "event=onnx_int8_not_served" in caplog.text and "argmax agreement 0.5000" in caplog.text
    assert f"event=onnx_unavailable id={store.latest(WITHOUT).id} reason=no_export" in caplog.text


def test_the_oip_metadata_names_the_runtime_before_and_after_loading(server, store):
    _, channel = server
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    for run, platform, runtime in (
        (WITH_GRAPHS, "onnxruntime_onnx", "onnx-int8"),
        (FAILED_INT8, "onnxruntime_onnx", "onnx-fp32"),
        (WITHOUT, "pytorch_transformers", "torch"),
    ):
        name = f"run-{run}"
        before = stub.ModelMetadata(pb.ModelMetadataRequest(name=name), timeout=10)
        assert before.platform == platform
        score(channel, run)
        after = stub.ModelConfig(pb.ModelConfigRequest(name=name), timeout=10).config
        assert (after.platform, after.parameters["runtime"].string_value) == (platform, runtime)


def test_a_damaged_graph_is_served_by_torch_and_logged(store, tmp_path, caplog):
    damaged = CheckpointStore(tmp_path / "store")
    shutil.copytree(store.latest(WITH_GRAPHS).path, damaged.root / store.latest(WITH_GRAPHS).path.name)
    checkpoint = damaged.list()[0]
    (checkpoint.path / "onnx" / "model.onnx").write_bytes(b"not a graph")
    cache = ModelCache(damaged, CacheConfig(runtime="onnx", precision="fp32"))
    try:
        entry = cache.load(ModelSpec(checkpoint_id=checkpoint.id))
        assert entry.runtime == "torch"
        assert "event=onnx_load_failed" in caplog.text and "sha256 differs" in caplog.text
        assert cache.score(ModelSpec(checkpoint_id=checkpoint.id), TEXTS).probabilities.shape == (len(TEXTS), 3)
    finally:
        cache.close()


def test_int8_rows_below_refine_below_are_scored_again_in_fp32(store):
    """With re-scoring on for every row, int8 serves exactly the fp32 graph's scores; off, the int8
    graph's own (close, not equal)."""
    checkpoint = store.latest(WITH_GRAPHS)
    spec = ModelSpec(checkpoint_id=checkpoint.id)
    caches = {b: ModelCache(store, CacheConfig(runtime="onnx", refine_below=b)) for b in (1.01, 0.0)}
    try:
        exact = caches[1.01].score(spec, TEXTS).probabilities
        plain = caches[0.0].score(spec, TEXTS).probabilities
        # refine_below 0 is below the check's 0.8: the fp32 graph serves alone, which is also exact
        assert caches[0.0].load(spec).runtime == "onnx-fp32"
        assert caches[1.01].load(spec).runtime == "onnx-int8"
    finally:
        for cache in caches.values():
            cache.close()
    served = onnx_runtime.load(checkpoint.path, labels=LABELS, name="x", max_length=64)
    rows = inference.tokenize(served, TEXTS).input_ids
    fp32 = onnx_runtime.forward(served, rows, full_precision=True).probabilities
    int8 = onnx_runtime.forward(served, rows).probabilities
    np.testing.assert_allclose(exact, fp32, atol=1e-6)
    np.testing.assert_allclose(plain, fp32, atol=1e-6)
    assert not np.array_equal(int8, fp32)  # the int8 graph computes something else, re-scored away


def test_runtime_names_are_checked(monkeypatch):
    assert pick_runtime("auto", "cpu") == "onnx" and pick_runtime("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="expected one of auto, torch, onnx"):
        pick_runtime("tensorrt")
    monkeypatch.setattr(onnx_runtime, "cuda_available", lambda: False)  # CUDA: tests/unit/modeling/test_gpu_paths.py
    with pytest.raises(ValueError, match="needs ONNX Runtime's CUDAExecutionProvider"):
        pick_runtime("onnx", "cuda")


def test_the_scorer_command_refuses_an_unknown_runtime(capsys):
    from lesslabels.scorer.main import main

    with pytest.raises(SystemExit):
        main(["--runtime", "tensorrt"])
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err
