"""Pooling (lesslabels.modeling.pooling): the head reads mean-pooled token vectors through its own
model class, saved with the checkpoint, so the trainer's logits, the scorer's probabilities and a
plain transformers pipeline agree."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lesslabels.modeling import pooling
from lesslabels.modeling.batching import tokenize
from lesslabels.modeling.models import load_classifier, save_classifier
from lesslabels.trainer import loop
from lesslabels.contract import Hyperparameters
from lesslabels.trainer.loop import Example

torch = pytest.importorskip("torch")
LABELS = ["flight", "airfare", "ground"]
TEXTS = ["a", "cheap flight to boston tomorrow morning please", "", "taxi at the airport", "fares"]


pytestmark = pytest.mark.usefixtures("few_torch_threads")


def _examples() -> list[Example]:
    out = []
    for i in range(6):
        out.append(Example(3 * i, f"flights from boston to denver {'on monday ' * (i % 4)}", "flight"))
        out.append(Example(3 * i + 1, f"cheapest fare to dallas {'please ' * (i % 3)}", "airfare"))
        out.append(Example(3 * i + 2, f"taxi at the airport {i}", "ground"))
    return out


def _trained(source: str, config: Hyperparameters, *, fresh_head: bool = True):
    torch.manual_seed(0)
    loaded = load_classifier(source, LABELS, pooling=config.pooling)
    loop.train(
        loaded.model,
        loaded.tokenizer,
        LABELS,
        _examples(),
        [],
        config,
        seed=0,
        device=torch.device("cpu"),
        fresh_head=fresh_head,
    )
    return loaded


@pytest.mark.parametrize("kind", ["mean", "cls"])
def test_the_scorer_reproduces_the_trainers_logits_from_the_saved_folder(tiny_bert_dir, tmp_path, kind):
    from lesslabels.modeling import inference

    loaded = _trained(str(tiny_bert_dir), Hyperparameters(batch_size=4, max_steps=6, pooling=kind))
    assert pooling.pooling_of(loaded.model) == kind
    folder = save_classifier(loaded.model, loaded.tokenizer, tmp_path / "checkpoint")
    config = json.loads((folder / "config.json").read_text())
    if kind == "mean":
        assert config["model_type"] == "lesslabels-bert-mean" and (folder / "meanpool_bert.py").is_file()
        assert config["auto_map"]["AutoModelForSequenceClassification"].startswith("meanpool_bert.")
    else:
        assert config["model_type"] == "bert" and "auto_map" not in config

    ids = tokenize(loaded.tokenizer, TEXTS, 64)
    trainer_probs = torch.softmax(
        loop.predict_logits(loaded.model, ids, device=torch.device("cpu"), pad_id=0), dim=1
    ).numpy()
    served = inference.load_classifier(folder, precision="fp32", device=torch.device("cpu"))
    assert pooling.pooling_of(served.model) == kind
    assert served.cls_only == (kind == "cls")  # the [CLS]-only shortcut would be wrong for mean pooling
    rows = inference.tokenize(served, TEXTS).input_ids
    np.testing.assert_allclose(inference.forward(served, rows).probabilities, trainer_probs, atol=1e-5)
    with_embeddings = inference.forward(served, rows, embeddings=True)
    np.testing.assert_allclose(with_embeddings.probabilities, trainer_probs, atol=1e-5)


def test_mean_pooling_is_the_masked_mean_of_the_last_layer(tiny_bert_dir):
    mean = load_classifier(str(tiny_bert_dir), LABELS, pooling="mean").model.eval()
    torch.manual_seed(0)
    cls = load_classifier(str(tiny_bert_dir), LABELS, pooling="cls").model.eval()
    ids, mask = torch.tensor([[101, 2000, 3000, 102]]), torch.ones(1, 4, dtype=torch.long)
    with torch.inference_mode():
        states = mean.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(mean(input_ids=ids, attention_mask=mask).logits, mean.classifier(states.mean(dim=1)))
        cls.classifier.load_state_dict(mean.classifier.state_dict())  # the same head, the other pooling
        assert not torch.allclose(
            cls(input_ids=ids, attention_mask=mask).logits, mean(input_ids=ids, attention_mask=mask).logits
        )


def test_mean_pooling_leaves_padding_out(tiny_bert_dir):
    """A text's logits are the same alone and padded beside a longer text."""
    loaded = load_classifier(str(tiny_bert_dir), LABELS, pooling="mean")
    short = [101, 2000, 102]
    alone = loop.predict_logits(loaded.model, [short], device=torch.device("cpu"), pad_id=0)
    padded = loop.predict_logits(
        loaded.model, [short, [101] + [2001] * 20 + [102]], device=torch.device("cpu"), pad_id=0, batch_size=2
    )
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)


def test_unknown_pooling_is_refused(tiny_bert_dir):
    from lesslabels.common import errors

    with pytest.raises(errors.InvalidArgument, match="pooling 'max'"):
        Hyperparameters(pooling="max").validate()
    with pytest.raises(ValueError, match="pooling 'max'"):
        load_classifier(str(tiny_bert_dir), LABELS, pooling="max")


def test_a_warm_start_keeps_its_checkpoints_pooling(tiny_bert_dir, tmp_path):
    first = _trained(str(tiny_bert_dir), Hyperparameters(batch_size=4, max_steps=2, pooling="cls"))
    folder = save_classifier(first.model, first.tokenizer, tmp_path / "round0")
    again = _trained(str(folder), Hyperparameters(batch_size=4, max_steps=2, pooling="mean"), fresh_head=False)
    assert pooling.pooling_of(again.model) == "cls"


PIPELINE = """
import sys
from transformers import pipeline
folder, trust = sys.argv[1], sys.argv[2] == "trust"
try:
    classify = pipeline("text-classification", model=folder, device="cpu", trust_remote_code=trust)
except ValueError as exc:
    print("REFUSED", str(exc).splitlines()[0])
    raise SystemExit(0)
(out,) = classify("taxi at the airport")
print("LABEL", out["label"], out["score"], type(classify.model).__name__)
"""


@pytest.mark.slow  # 20+ s: a transformers pipeline loading the folder's code (make test-slow, CI)
def test_a_mean_pooled_folder_loads_in_a_plain_transformers_pipeline_with_its_code(tiny_bert_dir, tmp_path):
    """Outside lesslabels (a fresh interpreter that never imported it) the folder loads with
    trust_remote_code=True and gives the scorer's prediction; without it transformers refuses the
    folder instead of silently reading the [CLS] position."""
    from lesslabels.modeling import inference

    loaded = _trained(str(tiny_bert_dir), Hyperparameters(batch_size=4, max_steps=6, pooling="mean"))
    folder = save_classifier(loaded.model, loaded.tokenizer, tmp_path / "checkpoint")
    served = inference.load_classifier(folder, precision="fp32", device=torch.device("cpu"))
    probs = inference.forward(served, inference.tokenize(served, ["taxi at the airport"]).input_ids).probabilities[0]

    def outside(trust: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", PIPELINE, str(folder), trust],
            capture_output=True,
            text=True,
            timeout=240,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    label, score, cls_name = outside("trust").split("LABEL", 1)[1].split()
    assert label == LABELS[int(probs.argmax())] and float(score) == pytest.approx(float(probs.max()), abs=1e-4)
    assert cls_name == "MeanPoolBertForSequenceClassification"
    assert "REFUSED" in outside("no") and "custom code" in outside("no")
