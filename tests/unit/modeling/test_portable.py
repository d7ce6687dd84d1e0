"""The portable model (lesslabels.modeling.portable, onnx_export, st_export): a checkpoint exported as
one ONNX graph and as a sentence-transformers folder gives the scorer's predictions without lesslabels
or remote code; bad destinations and checkpoints are refused with nothing written or lost."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lesslabels.common import errors
from lesslabels.common.checkpoints import WEIGHTS, CheckpointStore
from lesslabels.modeling import inference, onnx_export, portable, st_export
from tests.scorer_checkpoints import LABELS, publish_tiny_checkpoint

torch = pytest.importorskip("torch")
onnxruntime = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("few_torch_threads")

MEAN_RUN, CLS_RUN = 7, 9
TEXTS = [
    "show me flights from boston to denver",
    "what is the cheapest fare",
    "",
    "ground transportation in atlanta please",
    "which airlines fly to dallas on monday morning before noon and arrive before five in the evening " * 3,
    "abbreviation ap57",
    "hello",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_bert_dir) -> CheckpointStore:
    """A mean-pooled checkpoint (the trainer's default) for run 7, a [CLS]-pooled one for run 9."""
    store = CheckpointStore(tmp_path_factory.mktemp("checkpoints"))
    publish_tiny_checkpoint(store, tiny_bert_dir, run_id=MEAN_RUN, pooling="mean")
    publish_tiny_checkpoint(store, tiny_bert_dir, run_id=CLS_RUN, pooling="cls")
    return store


@pytest.fixture(scope="module")
def exported(store, tmp_path_factory) -> dict[str, portable.Exported]:
    out = tmp_path_factory.mktemp("exports")
    return {
        pooling: portable.export_model(store.latest(run), out / pooling, store=store)
        for pooling, run in (("mean", MEAN_RUN), ("cls", CLS_RUN))
    }


def scorer_outputs(checkpoint, texts):
    """What the scorer computes for ``texts`` (fp32): probabilities and embeddings."""
    loaded = inference.load_classifier(
        checkpoint.path, labels=checkpoint.labels, device=torch.device("cpu"), max_length=16, precision="fp32"
    )
    return inference.forward(loaded, inference.tokenize(loaded, texts).input_ids, embeddings=True, full_precision=True)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_onnx_graph_gives_the_scorers_probabilities_and_embeddings(store, exported, pooling):
    checkpoint = store.get(exported[pooling].checkpoint_id)
    expected = scorer_outputs(checkpoint, TEXTS)
    session, tokenizer = onnx_export.open_session(exported[pooling].folders["onnx"])
    for rows in (slice(None), slice(0, 1), slice(2, 3), slice(4, 5), slice(1, 4)):  # batch and length vary
        probabilities, embeddings = onnx_export.predict(session, tokenizer, TEXTS[rows])
        assert probabilities.shape == (len(TEXTS[rows]), len(LABELS))
        assert np.abs(probabilities - expected.probabilities[rows]).max() < 1e-4
        assert np.array_equal(probabilities.argmax(1), expected.probabilities[rows].argmax(1))
        np.testing.assert_allclose(embeddings, expected.embeddings[rows], atol=1e-4)
    assert len(set(expected.probabilities.argmax(1))) > 1  # the texts are told apart: the check can fail


def test_the_onnx_folder_names_its_labels_inputs_axes_and_source(store, exported):
    import onnx

    folder = exported["mean"].folders["onnx"]
    assert sorted(p.name for p in folder.iterdir()) == ["labels.json", "manifest.json", "model.onnx", "tokenizer.json"]
    assert json.loads((folder / "labels.json").read_text()) == LABELS
    manifest = json.loads((folder / "manifest.json").read_text())
    checkpoint = store.latest(MEAN_RUN)
    assert manifest["checkpoint_id"] == checkpoint.id and manifest["run_id"] == MEAN_RUN
    assert manifest["opset"] == onnx_export.OPSET and manifest["max_length"] == 16 and manifest["pooling"] == "mean"
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["outputs"] == ["probabilities", "embedding"]
    assert manifest["checked"]["max_abs_difference"] < 1e-4
    graph = onnx.load(str(folder / "model.onnx")).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims == {name: ["batch", "sequence"] for name in manifest["inputs"]}
    outputs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output}
    assert outputs == {"probabilities": ["batch", len(LABELS)], "embedding": ["batch", 32]}


def test_the_tokenizer_json_truncates_at_the_checkpoints_max_length_and_pads_a_batch(exported):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(exported["mean"].folders["onnx"] / "tokenizer.json"))
    long, short = tokenizer.encode_batch([TEXTS[4], "hi"])
    assert len(long.ids) == len(short.ids) == 16
    assert long.ids[-1] == 102 and sum(short.attention_mask) == 3  # [SEP] kept; [CLS] hi [SEP]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_sentence_transformers_folder_loads_without_remote_code_and_gives_the_scorers_probabilities(
    store, exported, pooling
):
    from transformers import AutoConfig

    folder = exported[pooling].folders["sentence-transformers"]
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    assert config.model_type == "bert" and not getattr(config, "auto_map", None)
    assert not list(folder.rglob("*.py"))  # no code travels with it
    assert json.loads((folder / "labels.json").read_text()) == LABELS
    expected = scorer_outputs(store.get(exported[pooling].checkpoint_id), TEXTS).probabilities
    got = st_export.predict(folder, TEXTS)  # plain transformers + torch
    assert np.abs(got - expected).max() < 1e-4 and np.array_equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_sentence_transformers_loads_the_folder_and_its_embedding_is_the_classifiers_logits(store, exported, pooling):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    folder = exported[pooling].folders["sentence-transformers"]
    model = sentence_transformers.SentenceTransformer(str(folder), device="cpu", trust_remote_code=False)
    probabilities = model.encode(TEXTS, convert_to_tensor=True).softmax(dim=-1).numpy()
    expected = scorer_outputs(store.get(exported[pooling].checkpoint_id), TEXTS).probabilities
    assert np.abs(probabilities - expected).max() < 1e-4
    assert np.array_equal(probabilities.argmax(1), expected.argmax(1))
    assert model.max_seq_length == 16


def test_the_readmes_transformers_example_prints_the_scorers_predictions(store, exported, tmp_path):
    import subprocess
    import sys

    from tests.readme_blocks import python_block

    block = python_block('folder = "flights-model/sentence-transformers"')
    shutil.copytree(exported["mean"].path, tmp_path / "flights-model")  # the folder the example names
    out = subprocess.run([sys.executable, "-I", "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    texts = [text for _, _, text in rows]
    expected = scorer_outputs(store.latest(MEAN_RUN), texts).probabilities
    assert [label for label, _, _ in rows] == [LABELS[i] for i in expected.argmax(1)]
    assert [float(p) for _, p, _ in rows] == pytest.approx(expected.max(1), abs=1e-3)


def test_a_classifier_the_sentence_transformers_layout_cannot_express_is_refused_before_anything_is_written(
    tiny_bert_dir, tmp_path
):
    """A DistilBERT classifier: its head (pre_classifier, ReLU) is not BERT's. The ONNX format takes it,
    with the two inputs DistilBERT has (no token_type_ids)."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=64
    )
    config.update(
        {"num_labels": 3, "id2label": dict(enumerate(LABELS)), "label2id": {x: i for i, x in enumerate(LABELS)}}
    )
    store = CheckpointStore(tmp_path / "checkpoints")
    manifest = {"run_id": 3, "labels": LABELS, "hyperparameters": {"max_length": 16}}
    with store.publish(manifest) as folder:
        DistilBertForSequenceClassification(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    checkpoint = store.get(manifest["id"])
    with pytest.raises(errors.FailedPrecondition, match="covers BERT classifiers.*DistilBert.*use --format onnx"):
        portable.export_model(checkpoint, tmp_path / "out", store=store)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["checkpoints"]
    done = portable.export_model(checkpoint, tmp_path / "out", ["onnx"], store=store)
    assert json.loads((done.folders["onnx"] / "manifest.json").read_text())["inputs"] == ["input_ids", "attention_mask"]
    assert sorted(p.name for p in done.path.iterdir()) == ["onnx"]


def test_runs_and_checkpoint_ids_resolve_to_the_model_the_run_keeps_or_its_latest(store):
    latest = store.latest(MEAN_RUN)
    assert portable.resolve_checkpoint(store, str(MEAN_RUN)).id == store.best(MEAN_RUN).id
    assert portable.resolve_checkpoint(store, f"run-{MEAN_RUN}", latest=True).id == latest.id
    assert portable.resolve_checkpoint(store, latest.id).id == latest.id
    assert portable.resolve_checkpoint(store, f"ckpt-{latest.id}").id == latest.id


@pytest.mark.parametrize(
    ("ref", "latest", "error", "message"),
    [
        ("20990101T000000-deadbeef", False, errors.NotFound, "checkpoint '20990101T000000-deadbeef' not found"),
        ("42", False, errors.NotFound, "run 42 has no published checkpoint"),
        ("run-42", True, errors.NotFound, "run 42 has no published checkpoint"),
        ("0", False, errors.InvalidArgument, "a run number is 1 or more"),
        ("../../etc", False, errors.InvalidArgument, "invalid checkpoint id"),
        ("20990101T000000-deadbeef", True, errors.InvalidArgument, "--latest takes a run"),
    ],
)
def test_an_unknown_checkpoint_or_run_is_named(store, ref, latest, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        portable.resolve_checkpoint(store, ref, latest=latest)


def test_a_non_empty_out_dir_is_kept_unless_forced_and_force_replaces_only_an_earlier_export(store, tmp_path):
    checkpoint = store.latest(CLS_RUN)
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(errors.AlreadyExists, match="is not empty: give --force"):
        portable.export_model(checkpoint, out, ["onnx"], store=store)
    with pytest.raises(errors.FailedPrecondition, match="holds more than an earlier export \\('notes.txt'\\)"):
        portable.export_model(checkpoint, out, ["onnx"], force=True, store=store)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    portable.export_model(checkpoint, out, ["sentence-transformers"], store=store)  # empty: no --force needed
    with pytest.raises(errors.AlreadyExists):
        portable.export_model(checkpoint, out, ["onnx"], store=store)
    portable.export_model(checkpoint, out, ["onnx"], force=True, store=store)
    assert sorted(p.name for p in out.iterdir()) == ["onnx"]  # replaced whole, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or old folder left


def test_an_out_dir_that_is_a_file_or_holds_or_lies_inside_the_checkpoint_is_refused(store, tmp_path):
    checkpoint = store.latest(CLS_RUN)
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.InvalidArgument, match="exists and is not a folder"):
        portable.export_model(checkpoint, tmp_path / "file", store=store)
    for out in (checkpoint.path / "export", checkpoint.path.parent, checkpoint.path):
        with pytest.raises(errors.InvalidArgument, match="holds or lies inside checkpoint"):
            portable.export_model(checkpoint, out, force=True, store=store)
    store.verify(checkpoint)  # the checkpoint is as it was
    assert not (checkpoint.path / "export").exists()


def test_an_unknown_format_is_named(store, tmp_path):
    with pytest.raises(errors.InvalidArgument, match="format 'tflite': expected onnx, sentence-transformers"):
        portable.export_model(store.latest(CLS_RUN), tmp_path / "out", ["tflite"], store=store)


def test_a_checkpoint_whose_weights_do_not_match_its_manifest_is_not_exported(tiny_bert_dir, tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    checkpoint = store.get(publish_tiny_checkpoint(store, tiny_bert_dir))
    weights = checkpoint.path / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-8] + b"12345678")
    with pytest.raises(errors.FailedPrecondition, match="does not match the manifest"):
        portable.export_model(checkpoint, tmp_path / "out", store=store)
    assert not (tmp_path / "out").exists()


def test_an_export_that_fails_its_check_leaves_no_out_dir_and_no_staging(store, tmp_path, monkeypatch):
    def disagree(loaded, folder):
        raise errors.FailedPrecondition("the sentence-transformers folder's probabilities differ")

    monkeypatch.setattr(st_export, "check_against_torch", disagree)
    with pytest.raises(errors.FailedPrecondition, match="probabilities differ"):
        portable.export_model(store.latest(CLS_RUN), tmp_path / "out", store=store)
    assert list(tmp_path.iterdir()) == []


def test_an_onnx_graph_that_disagrees_with_the_model_is_refused(store, tmp_path, monkeypatch):
    """The check is real: a graph run on other probabilities than the model's fails it."""
    real = onnx_export.predict
    monkeypatch.setattr(onnx_export, "predict", lambda *a: (real(*a)[0][:, ::-1].copy(), real(*a)[1]))
    with pytest.raises(errors.FailedPrecondition, match="ONNX graph's probabilities differ"):
        portable.export_model(store.latest(CLS_RUN), tmp_path / "out", ["onnx"], store=store)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_bundled_minilm_classifier_exports_and_both_formats_give_its_predictions(tmp_path):
    """The real encoder (all-MiniLM-L6-v2, mean pooling) with a fresh head, as round 0 publishes it."""
    from lesslabels.modeling.models import default_model_path, load_classifier, save_classifier

    torch.manual_seed(0)
    loaded = load_classifier(default_model_path(), LABELS, pooling="mean")
    store = CheckpointStore(tmp_path / "checkpoints")
    manifest = {"run_id": 1, "labels": LABELS, "hyperparameters": {"max_length": 64, "pooling": "mean"}}
    with store.publish(manifest) as folder:
        save_classifier(loaded.model, loaded.tokenizer, folder)
    checkpoint = store.get(manifest["id"])
    done = portable.export_model(checkpoint, tmp_path / "out", store=store)
    scorer = inference.load_classifier(
        checkpoint.path, labels=LABELS, device=torch.device("cpu"), max_length=64, precision="fp32"
    )
    expected = inference.forward(scorer, inference.tokenize(scorer, TEXTS).input_ids, full_precision=True)
    session, tokenizer = onnx_export.open_session(done.folders["onnx"])
    onnx_probabilities, _ = onnx_export.predict(session, tokenizer, TEXTS)
    st_probabilities = st_export.predict(done.folders["sentence-transformers"], TEXTS)
    for got in (onnx_probabilities, st_probabilities):
        assert np.abs(got - expected.probabilities).max() < 1e-4
        assert np.array_equal(got.argmax(1), expected.probabilities.argmax(1))
