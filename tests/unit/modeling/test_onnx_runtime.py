"""The scorer's ONNX Runtime engine (lesslabels.modeling.onnx_runtime): a checkpoint's graphs built
beside it, the int8 graph checked against the fp32 one, and served only where the check passed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.modeling import inference, onnx_export, onnx_runtime
from tests.scorer_checkpoints import LABELS, TEXTS, publish_tiny_checkpoint

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("few_torch_threads")

CHECK_TEXTS = [f"{text} {i}" for i in range(40) for text in TEXTS]


def fp32_model(checkpoint) -> inference.InferenceModel:
    return inference.load_classifier(
        checkpoint.path, labels=checkpoint.labels, device=torch.device("cpu"), max_length=16, precision="fp32"
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_bert_dir):
    """A mean-pooled tiny checkpoint with its ONNX graphs built as the trainer builds them."""
    store = CheckpointStore(tmp_path_factory.mktemp("checkpoints"))
    checkpoint = store.get(publish_tiny_checkpoint(store, tiny_bert_dir, pooling="mean"))
    manifest = onnx_runtime.build(fp32_model(checkpoint), checkpoint.path, CHECK_TEXTS)
    return checkpoint, manifest


def copy_of(checkpoint, tmp_path):
    folder = tmp_path / checkpoint.path.name
    shutil.copytree(checkpoint.path, folder)
    return folder


def test_the_build_writes_both_graphs_and_the_int8_check_beside_the_checkpoint(built):
    checkpoint, manifest = built
    folder = checkpoint.path / onnx_runtime.FOLDER
    assert sorted(p.name for p in folder.iterdir()) == [
        "labels.json",
        "manifest.json",
        "model.int8.onnx",
        "model.onnx",
        "tokenizer.json",
    ]
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    check = manifest["int8"]
    assert check["texts"] == len(CHECK_TEXTS) and check["refine_below"] == onnx_runtime.REFINE_BELOW
    assert check["passed"] == (check["agreement"] >= 0.995 and check["entropy_p99"] <= 0.05)
    assert set(manifest["sha256"]) == {"model.onnx", "model.int8.onnx"}
    # int8 weights: the MatMuls of the quantized graph take int8 inputs, the fp32 graph has none
    import onnx

    def ops(name):
        return {node.op_type for node in onnx.load(str(folder / name)).graph.node}

    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops("model.int8.onnx")
    assert not ops("model.onnx") & {"MatMulInteger", "DynamicQuantizeLinear"}


def test_the_check_is_made_on_at_most_check_texts_drawn_from_the_run(built, tmp_path, monkeypatch):
    checkpoint, _ = built
    folder = copy_of(checkpoint, tmp_path)
    shutil.rmtree(folder / onnx_runtime.FOLDER)
    monkeypatch.setattr(onnx_runtime, "CHECK_TEXTS", 25)
    manifest = onnx_runtime.build(fp32_model(checkpoint), folder, CHECK_TEXTS)
    assert manifest["int8"]["texts"] == 25


def test_the_served_model_gives_the_fp32_scores_where_asked_and_int8_ones_close_to_them(built):
    checkpoint, manifest = built
    served = onnx_runtime.load(checkpoint.path, labels=LABELS, name=checkpoint.id, max_length=16)
    assert served.runtime == (onnx_runtime.ONNX_INT8 if manifest["int8"]["passed"] else onnx_runtime.ONNX_FP32)
    assert served.max_length == 16 and served.labels == LABELS
    torch_model = fp32_model(checkpoint)
    rows = inference.tokenize(served, TEXTS).input_ids
    assert [list(r) for r in rows] == [list(r) for r in inference.tokenize(torch_model, TEXTS).input_ids]
    expected = inference.forward(torch_model, rows, embeddings=True, full_precision=True)
    exact = onnx_runtime.forward(served, rows, embeddings=True, full_precision=True)
    np.testing.assert_allclose(exact.probabilities, expected.probabilities, atol=1e-4)
    np.testing.assert_allclose(exact.embeddings, expected.embeddings, atol=1e-4)
    assert len(set(expected.probabilities.argmax(1))) > 1  # the texts are told apart
    quick = onnx_runtime.forward(served, rows)
    assert quick.embeddings is None and quick.probabilities.shape == (len(TEXTS), len(LABELS))
    assert np.abs(quick.probabilities - expected.probabilities).max() < 0.1
    empty = onnx_runtime.forward(served, [])
    assert empty.probabilities.shape == (0, len(LABELS))


def test_the_check_fails_a_graph_that_does_not_agree(built, tiny_bert_dir, tmp_path, monkeypatch):
    """Another model's graph in the int8 graph's place: no re-scoring, so the argmax disagrees."""
    checkpoint, _ = built
    other_store = CheckpointStore(tmp_path / "other")
    other = other_store.get(publish_tiny_checkpoint(other_store, tiny_bert_dir, pooling="mean", seed=3))
    onnx_export.export_onnx(fp32_model(other), tmp_path / "other-graph", {})
    monkeypatch.setattr(onnx_runtime, "REFINE_BELOW", 0.0)
    check = onnx_runtime.check_int8(
        onnx_runtime.session(checkpoint.path / "onnx" / "model.onnx"),
        onnx_runtime.session(tmp_path / "other-graph" / "model.onnx"),
        fp32_model(checkpoint),
        CHECK_TEXTS,
    )
    assert check.agreement < onnx_runtime.MIN_AGREEMENT and not check.passed and check.rescored == 0


def test_an_int8_graph_that_failed_its_check_never_serves(built, tmp_path):
    checkpoint, _ = built
    folder = copy_of(checkpoint, tmp_path)
    path = folder / "onnx" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["int8"].update(agreement=0.9, passed=False)
    path.write_text(json.dumps(manifest))
    served = onnx_runtime.load(folder, labels=LABELS, name="x", max_length=16)
    assert served.runtime == onnx_runtime.ONNX_FP32 and served.int8 is None
    assert "failed its check: argmax agreement 0.9000 (at least 0.995)" in served.why_fp32
    assert onnx_runtime.runtime_of_export(folder, 0.8) == onnx_runtime.ONNX_FP32


def test_int8_does_not_serve_a_scorer_that_rescores_less_than_the_check_did(built):
    checkpoint, manifest = built
    if not manifest["int8"]["passed"]:
        pytest.skip("the tiny model's int8 graph did not pass its check")
    served = onnx_runtime.load(checkpoint.path, labels=LABELS, name="x", max_length=16, refine_below=0.5)
    assert served.runtime == onnx_runtime.ONNX_FP32
    assert "re-scoring below 0.8, and this scorer re-scores below 0.5" in served.why_fp32
    assert onnx_runtime.runtime_of_export(checkpoint.path, 0.8) == onnx_runtime.ONNX_INT8


def test_a_damaged_graph_or_other_labels_are_refused(built, tmp_path):
    checkpoint, _ = built
    folder = copy_of(checkpoint, tmp_path)
    with (folder / "onnx" / "model.int8.onnx").open("r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(ValueError, match="model.int8.onnx: its sha256 differs"):
        onnx_runtime.load(folder, labels=LABELS, name="x", max_length=16)
    with pytest.raises(ValueError, match="labels differ"):
        onnx_runtime.load(checkpoint.path, labels=["x", "y", "z"], name="x", max_length=16)
    assert not onnx_runtime.has_export(tmp_path)
