"""Pooling (lesslabels.modeling.pooling): what the head reads, recorded in the checkpoint, so that
the trainer's logits and the scorer's probabilities agree for either pooling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lesslabels.modeling import pooling
from lesslabels.modeling.batching import tokenize
from lesslabels.modeling.models import load_classifier, save_classifier
from lesslabels.trainer import engine
from lesslabels.trainer.engine import Example, TrainConfig

torch = pytest.importorskip("torch")
LABELS = ["flight", "airfare", "ground"]
TEXTS = ["a", "cheap flight to boston tomorrow morning please", "", "taxi at the airport", "fares"]
CPU = None


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _examples() -> list[Example]:
    out = []
    for i in range(6):
        out.append(Example(3 * i, f"flights from boston to denver {'on monday ' * (i % 4)}", "flight"))
        out.append(Example(3 * i + 1, f"cheapest fare to dallas {'please ' * (i % 3)}", "airfare"))
        out.append(Example(3 * i + 2, f"taxi at the airport {i}", "ground"))
    return out


def _trained(source: str, config: TrainConfig, *, fresh_head: bool = True):
    torch.manual_seed(0)
    loaded = load_classifier(source, LABELS)
    engine.train(
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

    loaded = _trained(str(tiny_bert_dir), TrainConfig(batch_size=4, max_steps=6, pooling=kind))
    folder = save_classifier(loaded.model, loaded.tokenizer, tmp_path / "checkpoint")
    assert json.loads((folder / "config.json").read_text())[pooling.CONFIG_ATTRIBUTE] == kind

    ids = tokenize(loaded.tokenizer, TEXTS, 64)
    trainer_probs = torch.softmax(
        engine.predict_logits(loaded.model, ids, device=torch.device("cpu"), pad_id=0), dim=1
    ).numpy()
    served = inference.load_classifier(folder, precision="fp32", device=torch.device("cpu"))
    assert pooling.pooling_of(served.model) == kind
    assert served.cls_only == (kind == "cls")  # the [CLS]-only shortcut would be wrong for mean pooling
    rows = inference.tokenize(served, TEXTS).input_ids
    np.testing.assert_allclose(inference.forward(served, rows).probabilities, trainer_probs, atol=1e-5)
    with_embeddings = inference.forward(served, rows, embeddings=True)
    np.testing.assert_allclose(with_embeddings.probabilities, trainer_probs, atol=1e-5)


def test_the_two_poolings_give_different_logits(tiny_bert_dir):
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    ids, mask = torch.tensor([[101, 2000, 3000, 102]]), torch.ones(1, 4, dtype=torch.long)
    loaded.model.eval()
    with torch.inference_mode():
        pooling.set_pooling(loaded.model, "cls")
        cls = pooling.logits(loaded.model, ids, mask)
        pooling.set_pooling(loaded.model, "mean")
        mean = pooling.logits(loaded.model, ids, mask)
        states = loaded.model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        expected = loaded.model.classifier(states.mean(dim=1))
    assert not torch.allclose(cls, mean)
    torch.testing.assert_close(mean, expected)


def test_mean_pooling_leaves_padding_out(tiny_bert_dir):
    """A text's logits are the same alone and padded beside a longer text."""
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    pooling.set_pooling(loaded.model, "mean")
    loaded.model.eval()
    short = [101, 2000, 102]
    alone = engine.predict_logits(loaded.model, [short], device=torch.device("cpu"), pad_id=0)
    padded = engine.predict_logits(
        loaded.model, [short, [101] + [2001] * 20 + [102]], device=torch.device("cpu"), pad_id=0, batch_size=2
    )
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)


def test_a_folder_without_the_attribute_is_cls(tiny_bert_dir):
    """Checkpoints written before pooling existed keep computing as they were trained."""
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    assert not hasattr(loaded.model.config, pooling.CONFIG_ATTRIBUTE)
    assert pooling.pooling_of(loaded.model) == "cls"
    ids, mask = torch.tensor([[101, 2000, 102]]), torch.ones(1, 3, dtype=torch.long)
    loaded.model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(pooling.logits(loaded.model, ids, mask), loaded.model(ids, mask).logits)


def test_mean_is_refused_to_a_head_that_is_not_one_linear_layer(tiny_bert_dir):
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    hidden = loaded.model.config.hidden_size
    loaded.model.classifier = torch.nn.Sequential(torch.nn.Linear(hidden, 3))
    assert pooling.set_pooling(loaded.model, "mean") == "cls"
    assert pooling.pooling_of(loaded.model) == "cls"
    with pytest.raises(ValueError, match="pooling 'max'"):
        pooling.set_pooling(loaded.model, "max")


def test_a_warm_start_keeps_its_checkpoints_pooling(tiny_bert_dir, tmp_path):
    first = _trained(str(tiny_bert_dir), TrainConfig(batch_size=4, max_steps=2, pooling="cls"))
    folder = save_classifier(first.model, first.tokenizer, tmp_path / "round0")
    again = _trained(str(folder), TrainConfig(batch_size=4, max_steps=2, pooling="mean"), fresh_head=False)
    assert pooling.pooling_of(again.model) == "cls"
