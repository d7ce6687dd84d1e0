"""The CUDA paths of the trainer and the scorer (issue 27, item 4): pinned-memory batches copied
without blocking, bf16/fp16 autocast, ONNX Runtime's CUDA provider.

What decides a device's path is tested everywhere; the tests marked ``gpu`` run it on CUDA and are
skipped without it (no CI machine has a GPU: ``bench/gpu_check.sh`` runs them on one, then measures).
The module needs nothing of tests/conftest.py (its fixtures are here), so that a GPU machine without
the services' other dependencies runs it with ``pytest --noconftest``."""

from __future__ import annotations

import numpy as np
import pytest

from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.contract import Hyperparameters
from lesslabels.modeling import batching, inference, onnx_runtime
from lesslabels.modeling.models import load_classifier
from lesslabels.scorer.model_cache import CacheConfig, ModelCache, ModelSpec, pick_runtime
from lesslabels.trainer import loop
from tests.scorer_checkpoints import LABELS, TEXTS, publish_tiny_checkpoint

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("few_torch_threads")

CUDA = torch.cuda.is_available()
ORT_CUDA = onnx_runtime.cuda_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA")


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    from tests.tiny_model import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def few_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def collate_calls(monkeypatch):
    """The ``pin_memory`` of every batch the scorer's forward and the training loop build."""
    calls: list[bool] = []
    real = batching.collate

    def spy(token_ids, pad_id, *, pin_memory=False):
        calls.append(pin_memory)
        return real(token_ids, pad_id, pin_memory=pin_memory)

    monkeypatch.setattr(batching, "collate", spy)
    monkeypatch.setattr(inference, "collate", spy)
    return calls


@pytest.fixture(scope="module")
def store_and_checkpoint(tmp_path_factory, tiny_bert_dir):
    store = CheckpointStore(tmp_path_factory.mktemp("checkpoints"))
    return store, publish_tiny_checkpoint(store, tiny_bert_dir, pooling="mean")


def _examples() -> list[loop.Example]:
    texts = {"a": "flights from boston to denver", "b": "cheapest fare to dallas", "c": "taxi at the airport"}
    return [
        loop.Example(3 * i + k, f"{text} {i}", label) for i in range(6) for k, (label, text) in enumerate(texts.items())
    ]


def _train(tiny_bert_dir, device, precision: str, steps: int = 4):
    torch.manual_seed(0)
    loaded = load_classifier(str(tiny_bert_dir), LABELS, device=device)
    config = Hyperparameters(batch_size=4, max_epochs=1, max_steps=steps, min_steps_per_class=0, precision=precision)
    outcome = loop.train(loaded.model, loaded.tokenizer, LABELS, _examples(), [], config, seed=0, device=device)
    return loaded, outcome


# -- what decides the path (any machine) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "pinned"),
    [("cpu", False), (torch.device("cpu"), False), ("cuda", True), ("cuda:1", True), (torch.device("cuda", 0), True)],
)
def test_batches_are_pinned_only_for_cuda(device, pinned):
    assert batching.pin_memory_for(device) is pinned


def test_on_the_cpu_the_scorer_and_the_trainer_build_pageable_batches(
    tiny_bert_dir, store_and_checkpoint, collate_calls
):
    # Pinning needs CUDA: a CPU-only torch refuses pin_memory=True, so these runs also show it is not asked.
    store, checkpoint_id = store_and_checkpoint
    folder = store.get(checkpoint_id).path
    model = inference.load_classifier(folder, labels=LABELS, device=torch.device("cpu"), precision="fp32")
    probabilities = inference.forward(model, inference.tokenize(model, TEXTS).input_ids).probabilities
    assert probabilities is not None and probabilities.shape == (len(TEXTS), len(LABELS))
    _, outcome = _train(tiny_bert_dir, torch.device("cpu"), "fp32", steps=2)
    assert outcome.steps == 2
    assert collate_calls and not any(collate_calls)


def test_to_device_keeps_tensors_already_there():
    batch = batching.collate([[1, 2, 3], [4]], 0)
    moved = batching.to_device(batch, torch.device("cpu"))
    assert all(moved[k] is batch[k] for k in batch)  # no copy for a CPU model


def test_onnx_runtime_providers_per_device(monkeypatch):
    assert onnx_runtime.providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnx_runtime, "cuda_available", lambda: True)
    assert onnx_runtime.providers("cuda") == [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    assert onnx_runtime.providers("cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})
    monkeypatch.setattr(onnx_runtime, "cuda_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        onnx_runtime.providers("cuda")


def test_runtime_onnx_on_cuda_needs_the_cuda_provider_and_auto_stays_torch(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(onnx_runtime, "cuda_available", lambda: False)
    with pytest.raises(ValueError, match="CUDAExecutionProvider.*onnxruntime-gpu"):
        pick_runtime("onnx", "cuda")
    monkeypatch.setattr(onnx_runtime, "cuda_available", lambda: True)
    assert pick_runtime("onnx", "cuda") == "onnx" and pick_runtime("onnx", "cuda:1") == "onnx"
    assert pick_runtime("auto", "cuda") == "torch"  # bf16 autocast; ONNX Runtime would run fp32 there
    assert pick_runtime("auto", "cpu") == "onnx"


def test_the_int8_graph_does_not_serve_on_cuda_even_when_its_check_passed():
    passed = {"int8": {"passed": True, "agreement": 1.0, "entropy_p99": 0.0, "refine_below": 0.8}}
    assert onnx_runtime.why_not_int8(passed, 0.8, "cpu") == ""
    assert onnx_runtime.why_not_int8(passed, 0.8, "cuda:0") == onnx_runtime.INT8_NOT_ON_CUDA
    assert "CPU technique" in onnx_runtime.INT8_NOT_ON_CUDA


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_a_cuda_session_that_did_not_get_the_cuda_provider_is_refused(monkeypatch, tmp_path):
    """ONNX Runtime drops a provider it cannot start and runs on the CPU: the scorer must hear of it."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    if ORT_CUDA and CUDA:
        pytest.skip("the CUDA provider starts here")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert onnx_runtime.session(path, 1, "cpu").get_providers() == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnx_runtime, "cuda_available", lambda: True)  # as if onnxruntime-gpu were installed
    with pytest.raises(ValueError, match="CUDAExecutionProvider did not start"):
        onnx_runtime.session(path, 1, "cuda")


# -- on CUDA ---------------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_cuda_batches_are_built_pinned_and_copied_to_the_gpu():
    batch = batching.collate([[1, 2, 3], [4]], 0, pin_memory=True)
    assert all(t.is_pinned() for t in batch.values())
    moved = batching.to_device(batch, torch.device("cuda"))
    assert all(t.is_cuda for t in moved.values())
    assert torch.equal(moved["input_ids"].cpu(), batch["input_ids"])


@pytest.mark.gpu
@needs_cuda
def test_the_scorer_on_cuda_scores_in_bf16_and_rescores_uncertain_rows_in_fp32(store_and_checkpoint, collate_calls):
    store, checkpoint_id = store_and_checkpoint
    spec = ModelSpec(checkpoint_id=checkpoint_id)
    cpu = ModelCache(store, CacheConfig(device="cpu", precision="fp32"))
    plain = ModelCache(store, CacheConfig(device="cuda", precision="bf16", refine_below=0.0))
    refined = ModelCache(store, CacheConfig(device="cuda", precision="bf16", refine_below=1.01))
    try:
        exact = cpu.score(spec, TEXTS).probabilities
        assert collate_calls and not any(collate_calls)
        collate_calls.clear()
        bf16 = plain.score(spec, TEXTS).probabilities
        assert collate_calls and all(collate_calls)  # pinned batches on CUDA
        entry = plain.load(spec)
        assert str(entry.model.device).startswith("cuda") and entry.model.dtype == torch.bfloat16
        assert entry.runtime == "torch"
        # every row below 1.01: all re-scored in fp32 on the GPU, which matches the CPU's fp32
        rescored = refined.score(spec, TEXTS).probabilities
    finally:
        for cache in (cpu, plain, refined):
            cache.close()
    np.testing.assert_allclose(rescored, exact, atol=1e-4)
    assert np.abs(bf16 - exact).max() < 0.05  # bf16 alone: close, not exact
    assert (bf16.argmax(1) == exact.argmax(1)).mean() >= 0.8


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_the_trainer_trains_on_cuda(tiny_bert_dir, precision, collate_calls):
    device = torch.device("cuda")
    loaded, outcome = _train(tiny_bert_dir, device, precision, steps=4)
    assert outcome.steps == 4 and outcome.samples_per_second > 0
    assert all(p.device.type == "cuda" for p in loaded.model.parameters())
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())  # autocast, weights in fp32
    assert collate_calls and all(collate_calls)
    predicted = loop.predict_labels(
        loaded.model, loaded.tokenizer, [e.text for e in _examples()], Hyperparameters(), device
    )
    assert predicted.shape == (len(_examples()),)


@pytest.mark.gpu
@pytest.mark.skipif(not (CUDA and ORT_CUDA), reason="needs CUDA and onnxruntime-gpu's CUDAExecutionProvider")
def test_onnx_runtime_on_cuda_serves_the_fp32_graph(store_and_checkpoint, tiny_bert_dir):
    store, _ = store_and_checkpoint
    checkpoint_id = publish_tiny_checkpoint(store, tiny_bert_dir, run_id=8, pooling="mean")
    checkpoint = store.get(checkpoint_id)
    fp32 = inference.load_classifier(
        checkpoint.path, labels=checkpoint.labels, device=torch.device("cpu"), max_length=16, precision="fp32"
    )
    onnx_runtime.build(fp32, checkpoint.path, TEXTS)
    on_cuda = onnx_runtime.load(checkpoint.path, labels=LABELS, name="x", max_length=16, device="cuda")
    on_cpu = onnx_runtime.load(checkpoint.path, labels=LABELS, name="x", max_length=16, device="cpu")
    assert on_cuda.fp32.get_providers()[0] == "CUDAExecutionProvider"
    assert on_cuda.int8 is None and on_cuda.why_fp32 == onnx_runtime.INT8_NOT_ON_CUDA
    assert on_cuda.runtime == onnx_runtime.ONNX_FP32
    rows = inference.tokenize(on_cuda, TEXTS).input_ids
    gpu = onnx_runtime.forward(on_cuda, rows).probabilities
    cpu = onnx_runtime.forward(on_cpu, rows, full_precision=True).probabilities
    assert gpu is not None and cpu is not None
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    cache = ModelCache(store, CacheConfig(device="cuda", runtime="onnx"))
    try:
        cache.score(ModelSpec(checkpoint_id=checkpoint_id), TEXTS)
        assert cache.load(ModelSpec(checkpoint_id=checkpoint_id)).runtime == onnx_runtime.ONNX_FP32
    finally:
        cache.close()
