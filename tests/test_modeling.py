"""lesslabels.modeling and the trainer's engine, without gRPC: loading, batching, metrics, the loop."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from lesslabels.common import errors
from lesslabels.modeling.batching import collate, length_grouped_batches, tokenize
from lesslabels.modeling.metrics import Metrics, classification_metrics
from lesslabels.modeling.models import load_classifier, save_classifier, select_device
from lesslabels.trainer import engine
from lesslabels.trainer.engine import Example, TrainConfig

torch = pytest.importorskip("torch")
LABELS = ["flight", "airfare", "ground"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _examples(n_per_class: int = 8) -> list[Example]:
    out = []
    for i in range(n_per_class):
        out.append(Example(3 * i, f"flights from boston to denver {'on monday ' * (i % 4)}", "flight"))
        out.append(Example(3 * i + 1, f"cheapest fare to dallas {'please ' * (i % 3)}", "airfare"))
        out.append(Example(3 * i + 2, f"taxi at the airport {i}", "ground"))
    return out


# -- batching -----------------------------------------------------------------------------------

def test_length_grouped_batches_cover_every_index_once_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    batches = length_grouped_batches(lengths, 32, rng=np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    padded = sum(lengths[b].max() * len(b) for b in batches)
    file_order = sum(lengths[i:i + 32].max() * len(lengths[i:i + 32]) for i in range(0, 1000, 32))
    assert padded < 0.7 * file_order
    # Different epochs (rng states) give different batches; evaluation order is sorted.
    again = length_grouped_batches(lengths, 32, rng=np.random.default_rng(2))
    assert [b.tolist() for b in again] != [b.tolist() for b in batches]
    sorted_batches = length_grouped_batches(lengths, 32)
    assert np.all(np.diff(lengths[np.concatenate(sorted_batches)]) >= 0)
    with pytest.raises(ValueError):
        length_grouped_batches(lengths, 0)


def test_collate_pads_to_the_longest_in_the_batch():
    batch = collate([[101, 5, 102], [101, 102]], pad_id=0)
    assert batch["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_tokenize_truncates_and_does_not_pad(tiny_bert_dir):
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    ids = tokenize(loaded.tokenizer, ["hi", "word " * 100], max_length=16)
    assert len(ids[0]) == 3 and len(ids[1]) == 16


# -- metrics --------------------------------------------------------------------------------------

def test_metrics_by_hand():
    # gold    a a b b c ; predicted a b b b a
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c", "d"], loss=0.5)
    assert m.accuracy == pytest.approx(3 / 5) and m.count == 5 and m.loss == 0.5
    # a: tp1 gold2 pred2 -> 0.5; b: tp2 gold2 pred3 -> 0.8; c: 0; d absent from both.
    assert m.per_class_f1 == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    empty = classification_metrics([], [], ["a"])
    assert empty.count == 0 and empty.accuracy == 0.0


def test_class_weights_and_balanced_sampling():
    targets = np.array([0, 0, 0, 1])
    assert engine.class_weights(targets, 3).tolist() == pytest.approx([4 / 6, 4 / 2, 0.0])
    order = engine.balanced_order(np.array([0] * 90 + [1] * 10), np.random.default_rng(0))
    share_minority = np.mean(order >= 90)
    assert order.size == 100 and 0.35 < share_minority < 0.65


def test_stratified_split_keeps_a_training_sample_per_class_and_is_deterministic():
    examples = _examples(10) + [Example(1000, "lonely", "rare")]
    train, val = engine.stratified_split(examples, 0.2, seed=1)
    assert len(val) == 6 and {e.label for e in val} == set(LABELS)
    assert "rare" in {e.label for e in train} and not {e.sample_id for e in train} & {e.sample_id for e in val}
    assert engine.stratified_split(list(reversed(examples)), 0.2, seed=1) == (train, val)
    assert engine.stratified_split(examples, 0.2, seed=2)[1] != val


# -- models -------------------------------------------------------------------------------------

def test_encoder_gets_a_fresh_head_and_a_saved_classifier_reloads(tiny_bert_dir, tmp_path):
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    assert loaded.model.config.num_labels == 3 and loaded.labels == LABELS
    folder = save_classifier(loaded.model, loaded.tokenizer, tmp_path / "ckpt")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    back = load_classifier(str(folder))
    assert back.labels == LABELS
    for (name, a), (_, b) in zip(loaded.model.state_dict().items(), back.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(errors.InvalidArgument, match="trained for labels"):
        load_classifier(str(folder), ["x", "y"])


@pytest.mark.parametrize("labels, words", [(None, "no classifier labels"), (["a"], "at least 2 distinct"),
                                           (["a", "a"], "at least 2 distinct")])
def test_classifier_label_errors(tiny_bert_dir, labels, words):
    with pytest.raises(errors.InvalidArgument, match=words):
        load_classifier(str(tiny_bert_dir), labels)


def test_unloadable_model_names_it(tmp_path):
    with pytest.raises(errors.InvalidArgument, match="no-such/model"):
        load_classifier("no-such/model", LABELS)
    with pytest.raises(errors.InvalidArgument, match=str(tmp_path)):
        load_classifier(str(tmp_path), LABELS)


def test_select_device():
    assert select_device("").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu").type == "cpu"
    with pytest.raises(errors.InvalidArgument):
        select_device("warp-drive")


# -- the loop -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, words", [
    (dict(learning_rate=0.0), "learning_rate"), (dict(batch_size=0), "batch_size"),
    (dict(validation_fraction=0.0), "validation_fraction"), (dict(class_balance="magic"), "class_balance"),
    (dict(precision="fp8"), "precision"), (dict(patience=0), "patience"),
    (dict(min_steps=-1), "min_steps -1"), (dict(min_steps=9, max_steps=8), "must not exceed max_steps 8"),
])
def test_config_validation(kw, words):
    with pytest.raises(errors.InvalidArgument, match=words):
        TrainConfig(**kw).validate()


def _train(tiny_bert_dir, config, *, seed=0, cancel=None, on_progress=None, validation=True):
    torch.manual_seed(seed)
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    train, val = engine.stratified_split(_examples(), 0.25, seed)
    outcome = engine.train(loaded.model, loaded.tokenizer, LABELS, train, val if validation else [], config,
                           seed=seed, device=torch.device("cpu"), cancel=cancel, on_progress=on_progress,
                           progress_every_s=0.0)
    return loaded, outcome


def test_training_learns_and_keeps_the_best_epoch(tiny_bert_dir):
    events = []
    loaded, outcome = _train(tiny_bert_dir, TrainConfig(learning_rate=5e-3, batch_size=4, max_epochs=6, patience=6),
                             on_progress=events.append)
    epoch_metrics = [e.validation for e in events if e.validation is not None]
    assert len(epoch_metrics) == outcome.epochs_run == 6
    best = max(m.accuracy for m in epoch_metrics)
    assert outcome.validation.accuracy == best and best > 1 / 3
    assert epoch_metrics[outcome.best_epoch - 1].accuracy == best
    # The model holds the best epoch's weights: re-evaluating gives the same accuracy.
    _, val = engine.stratified_split(_examples(), 0.25, 0)
    ids = tokenize(loaded.tokenizer, [e.text for e in val], 64)
    again = engine.evaluate(loaded.model, ids, np.array([LABELS.index(e.label) for e in val]), LABELS,
                            device=torch.device("cpu"), pad_id=0)
    assert again.accuracy == pytest.approx(best)


def test_max_steps_and_no_validation(tiny_bert_dir):
    _, outcome = _train(tiny_bert_dir, TrainConfig(batch_size=4, max_epochs=5, max_steps=7), validation=False)
    assert outcome.steps == 7 and outcome.stop_reason == "max_steps 7 reached" and outcome.validation is None
    assert outcome.best_epoch == outcome.epochs_run == 2


def test_min_steps_adds_epochs_and_holds_off_early_stopping(tiny_bert_dir):
    # 5 steps per epoch; a vanishing learning rate makes every epoch a plateau, so patience 1
    # alone would stop after epoch 2 (10 steps), and max_epochs 2 would end there too.
    events = []
    _, outcome = _train(tiny_bert_dir, TrainConfig(learning_rate=1e-12, batch_size=4, max_epochs=2, patience=1,
                                                   min_steps=12), on_progress=events.append)
    assert outcome.steps == 15 and outcome.epochs_run == 3
    assert all(e.total_steps == 15 for e in events)
    assert "early stop" in outcome.stop_reason and outcome.best_epoch == 1
    _, outcome = _train(tiny_bert_dir, TrainConfig(batch_size=4, max_epochs=1, min_steps=12), validation=False)
    assert outcome.steps == 15 and outcome.stop_reason == "3 epochs reached (min_steps 12)"


def test_equal_validation_accuracy_goes_to_the_lower_loss():
    best = Metrics(accuracy=0.8, macro_f1=0.1, per_class_f1={}, count=10, loss=1.2)
    assert engine.improves(dataclasses.replace(best, loss=0.9), best)
    assert not engine.improves(dataclasses.replace(best, loss=1.3), best)
    assert not engine.improves(dataclasses.replace(best, accuracy=0.7, loss=0.1), best)
    assert engine.improves(dataclasses.replace(best, accuracy=0.9, loss=5.0), best)
    assert engine.improves(best, None)


@pytest.mark.parametrize("balance", ["weighted_loss", "sampling"])
def test_class_balance_options_train(tiny_bert_dir, balance):
    _, outcome = _train(tiny_bert_dir, TrainConfig(batch_size=4, max_epochs=1, class_balance=balance))
    assert outcome.steps == 5 and outcome.validation.count == 6


def test_cancel_is_checked_every_step(tiny_bert_dir):
    cancel = threading.Event()
    steps = []

    def on_progress(p):
        steps.append(p.step)
        if p.step == 2:
            cancel.set()

    with pytest.raises(errors.Cancelled, match="epoch 1 step 2"):
        _train(tiny_bert_dir, TrainConfig(batch_size=2, max_epochs=3), cancel=cancel, on_progress=on_progress)
    assert steps == [1, 2]


def test_auto_training_precision_on_cpu_follows_native_bf16(monkeypatch):
    from lesslabels.modeling import inference

    cpu = torch.device("cpu")
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    assert engine.autocast_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    assert engine.autocast_dtype("auto", cpu) is None
    assert engine.autocast_dtype("bf16", cpu) == torch.bfloat16 and engine.autocast_dtype("fp32", cpu) is None


def test_bf16_on_cpu_trains(tiny_bert_dir):
    _, outcome = _train(tiny_bert_dir, TrainConfig(batch_size=4, max_epochs=1, precision="bf16"))
    assert outcome.steps == 5 and 0 <= outcome.validation.accuracy <= 1
    with pytest.raises(errors.InvalidArgument, match="fp16 needs CUDA"):
        _train(tiny_bert_dir, TrainConfig(batch_size=4, max_epochs=1, precision="fp16"))
