"""lesslabels.modeling and the trainer's training loop (lesslabels.trainer.loop), without gRPC: loading, batching, metrics, the loop."""

from __future__ import annotations

import time

import dataclasses
import threading

import numpy as np
import pytest

from lesslabels.common import errors
from lesslabels.modeling.batching import char_limit, collate, encode, length_grouped_batches, tokenize
from lesslabels.contract.metrics import Metrics
from lesslabels.modeling.models import load_classifier, save_classifier, select_device
from lesslabels.trainer import loop
from lesslabels.contract import Hyperparameters
from lesslabels.trainer.loop import Example

torch = pytest.importorskip("torch")
LABELS = ["flight", "airfare", "ground"]


pytestmark = pytest.mark.usefixtures("few_torch_threads")


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
    file_order = sum(lengths[i : i + 32].max() * len(lengths[i : i + 32]) for i in range(0, 1000, 32))
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


def test_tokenize_cuts_a_huge_text_to_a_character_limit_first(tiny_bert_dir):
    """The trainer's tokenisation of an 8 MiB text costs what its first ``char_limit`` characters do."""
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    huge = "word " * (8 * 1024 * 1024 // 5)
    started = time.monotonic()
    ids = tokenize(loaded.tokenizer, [huge], max_length=64)
    assert time.monotonic() - started < 5
    assert ids == tokenize(loaded.tokenizer, [huge[: char_limit(64)]], max_length=64) and len(ids[0]) == 64


def test_encode_keeps_what_the_tokenizers_own_truncation_keeps_and_flags_it(tiny_bert_dir):
    """Bounded tokenisation (characters cut in proportion to max_length, no truncation asked of
    the tokenizer) keeps the same ids and truncation flags as the tokenizer truncating whole texts:
    texts cut inside a long word, a word longer than the first cut, CJK, punctuation, empty."""
    import random

    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    tok = loaded.tokenizer
    rng = random.Random(0)
    words = ["the", "flight", "boston", "internationalization", "x" * 150, "naïve", "日本語", "a.b,c", "\n", "  "]
    texts = ["", "hi", "word " * 100, "y" * 900, "short " + "z" * 600 + " tail"]
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(0, 300))) for _ in range(120)]
    for max_length in (8, 16, 64):
        got = encode(tok, texts, max_length)
        expected = tok(texts, truncation=True, max_length=max_length)["input_ids"]
        whole = tok(texts, truncation=False, verbose=False)["input_ids"]
        assert [row.tolist() for row in got.input_ids] == expected, max_length
        assert got.truncated.tolist() == [len(ids) > max_length for ids in whole], max_length
        assert all(row.dtype == np.int32 for row in got.input_ids)
    assert len(encode(tok, [], 16)) == 0
    # Past 128 characters a token of max_length (here a 3,000-character word) the rest is never
    # read: the text is flagged truncated, as a text whose end was not looked at.
    odd = encode(tok, ["short " + "z" * 3000 + " tail", "y" * 5000], 8)
    assert odd.truncated.tolist() == [True, True]
    assert tok.convert_ids_to_tokens(odd.input_ids[0].tolist()) == ["[CLS]", "short", "[SEP]"]


# -- class balance ---------------------------------------------------------------------------------


def test_class_weights_and_balanced_sampling():
    targets = np.array([0, 0, 0, 1])
    assert loop.class_weights(targets, 3).tolist() == pytest.approx([4 / 6, 4 / 2, 0.0])
    order = loop.balanced_order(np.array([0] * 90 + [1] * 10), np.random.default_rng(0))
    share_minority = np.mean(order >= 90)
    assert order.size == 100 and 0.35 < share_minority < 0.65


def test_stratified_split_keeps_a_training_sample_per_class_and_is_deterministic():
    examples = _examples(10) + [Example(1000, "lonely", "rare")]
    train, val = loop.stratified_split(examples, 0.2, seed=1)
    assert len(val) == 6 and {e.label for e in val} == set(LABELS)
    assert "rare" in {e.label for e in train} and not {e.sample_id for e in train} & {e.sample_id for e in val}
    assert loop.stratified_split(list(reversed(examples)), 0.2, seed=1) == (train, val)
    assert loop.stratified_split(examples, 0.2, seed=2)[1] != val


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


@pytest.mark.parametrize(
    "labels, words",
    [(None, "no classifier labels"), (["a"], "at least 2 distinct"), (["a", "a"], "at least 2 distinct")],
)
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


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(batch_size=0), "batch_size"),
        (dict(validation_fraction=0.0), "validation_fraction"),
        (dict(class_balance="magic"), "class_balance"),
        (dict(precision="fp8"), "precision"),
        (dict(patience=0), "patience"),
        (dict(min_steps=-1), r"min_steps must be in \[0, 10000000\], got -1"),
        (dict(min_steps=9, max_steps=8), "must not exceed max_steps 8"),
        (dict(min_steps_per_class=-1), r"min_steps_per_class must be in \[0, 100000\], got -1"),
        (dict(head_init="zeros"), "head_init 'zeros'"),
        (dict(pooling="max"), "pooling 'max'"),
        (dict(holdout_min_per_class=-3), r"holdout_min_per_class must be in \[0, 100000\], got -3"),
    ],
)
def test_config_validation(kw, words):
    with pytest.raises(errors.InvalidArgument, match=words):
        Hyperparameters(**kw).validate()


def _train(tiny_bert_dir, config, *, seed=0, cancel=None, on_progress=None, validation=True):
    torch.manual_seed(seed)
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    train, val = loop.stratified_split(_examples(), 0.25, seed)
    outcome = loop.train(
        loaded.model,
        loaded.tokenizer,
        LABELS,
        train,
        val if validation else [],
        config,
        seed=seed,
        device=torch.device("cpu"),
        cancel=cancel,
        on_progress=on_progress,
        progress_every_s=0.0,
    )
    return loaded, outcome


def test_training_learns_and_keeps_the_best_epoch(tiny_bert_dir):
    events = []
    loaded, outcome = _train(
        tiny_bert_dir,
        Hyperparameters(learning_rate=5e-3, batch_size=4, max_epochs=6, patience=6),
        on_progress=events.append,
    )
    epoch_metrics = [e.validation for e in events if e.validation is not None]
    assert len(epoch_metrics) == outcome.epochs_run == 6
    best = max(m.accuracy for m in epoch_metrics)
    assert outcome.validation.accuracy == best and best > 1 / 3
    assert epoch_metrics[outcome.best_epoch - 1].accuracy == best
    # The model holds the best epoch's weights: re-evaluating gives the same accuracy.
    _, val = loop.stratified_split(_examples(), 0.25, 0)
    ids = tokenize(loaded.tokenizer, [e.text for e in val], 64)
    again = loop.evaluate(
        loaded.model, ids, np.array([LABELS.index(e.label) for e in val]), LABELS, device=torch.device("cpu"), pad_id=0
    )
    assert again.accuracy == pytest.approx(best)


def test_max_steps_and_no_validation(tiny_bert_dir):
    _, outcome = _train(tiny_bert_dir, Hyperparameters(batch_size=4, max_epochs=5, max_steps=7), validation=False)
    assert outcome.steps == 7 and outcome.stop_reason == "max_steps 7 reached" and outcome.validation is None
    assert outcome.best_epoch == outcome.epochs_run == 2


def test_min_steps_adds_epochs_and_holds_off_early_stopping(tiny_bert_dir):
    # 5 steps per epoch; a vanishing learning rate makes every epoch a plateau, so patience 1
    # alone would stop after epoch 2 (10 steps), and max_epochs 2 would end there too.
    events = []
    _, outcome = _train(
        tiny_bert_dir,
        Hyperparameters(
            learning_rate=1e-12, batch_size=4, max_epochs=2, patience=1, min_steps=12, min_steps_per_class=0
        ),
        on_progress=events.append,
    )
    assert outcome.steps == 15 and outcome.epochs_run == 3
    assert all(e.total_steps == 15 for e in events)
    assert "early stop" in outcome.stop_reason and outcome.best_epoch == 1
    _, outcome = _train(
        tiny_bert_dir,
        Hyperparameters(batch_size=4, max_epochs=1, min_steps=12, min_steps_per_class=0),
        validation=False,
    )
    assert outcome.steps == 15 and outcome.stop_reason.startswith("3 epochs reached (min_steps 12")


def test_validation_every_few_epochs_when_there_are_many(tiny_bert_dir):
    """25 short epochs validate every 3rd epoch and after the last: 9 passes, not 25."""
    assert [loop.validation_every(n) for n in (1, 10, 11, 25, 64)] == [1, 1, 2, 3, 7]
    events = []
    _, outcome = _train(
        tiny_bert_dir,
        Hyperparameters(learning_rate=5e-3, batch_size=4, max_epochs=25, patience=100, min_steps_per_class=0),
        on_progress=events.append,
    )
    validated = [e.epoch for e in events if e.validation is not None]
    assert outcome.epochs_run == 25 and validated == [3, 6, 9, 12, 15, 18, 21, 24, 25]
    assert outcome.best_epoch in validated


def test_patience_counts_validations_not_epochs(tiny_bert_dir):
    # 22 epochs validate every 3rd; a vanishing learning rate makes every validation a plateau, so
    # patience 2 stops at the third validation (epoch 9), not at epoch 3.
    _, outcome = _train(
        tiny_bert_dir,
        Hyperparameters(learning_rate=1e-12, batch_size=4, max_epochs=22, patience=2, min_steps_per_class=0),
    )
    assert outcome.epochs_run == 9 and outcome.best_epoch == 3
    assert "for 2 validations (one every 3 epochs" in outcome.stop_reason


def test_min_steps_per_class_plans_steps_for_the_number_of_classes(tiny_bert_dir):
    # 18 training texts, batch 4: 5 steps per epoch; 3 classes x 4 steps = 12 steps -> 3 epochs.
    _, outcome = _train(
        tiny_bert_dir, Hyperparameters(batch_size=4, max_epochs=1, min_steps_per_class=4), validation=False
    )
    assert outcome.steps == 15 and outcome.epochs_run == 3
    assert "min_steps_per_class 4 x 3 classes" in outcome.stop_reason


@pytest.mark.parametrize(
    "kw, n_train, n_classes, expected",
    [
        (dict(max_epochs=10, min_steps_per_class=0), 100, 5, (10, 70)),  # 7 steps/epoch x 10
        (dict(max_epochs=10, min_steps=250, min_steps_per_class=8), 300, 150, (64, 1216)),  # 19/epoch, 1200 needed
        (dict(max_epochs=10, min_steps=250, min_steps_per_class=8), 100, 8, (36, 252)),  # 7/epoch, 250 needed
        (dict(max_epochs=10, min_steps=250, min_steps_per_class=8, max_steps=600), 300, 150, (64, 600)),  # capped
    ],
)
def test_planned_steps_hand_computed(kw, n_train, n_classes, expected):
    assert loop.planned_steps(Hyperparameters(batch_size=16, **kw), n_train, n_classes) == expected


def test_validation_split_holds_out_only_with_enough_labels_per_class():
    examples = _examples(8)  # 3 classes x 8
    train, val = loop.validation_split(examples, Hyperparameters(holdout_min_per_class=10), seed=0)
    assert val == [] and sorted(e.sample_id for e in train) == sorted(e.sample_id for e in examples)
    train, val = loop.validation_split(
        examples, Hyperparameters(holdout_min_per_class=8, validation_fraction=0.25), seed=0
    )
    assert len(val) == 6 and len(train) == 18 and {e.label for e in val} == set(LABELS)
    assert loop.validation_split([], Hyperparameters(), seed=0) == ([], [])


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_prototype_head_is_the_normalised_class_mean_of_the_head_input(tiny_bert_dir, pooling):
    torch.manual_seed(0)
    loaded = load_classifier(str(tiny_bert_dir), LABELS, pooling=pooling)
    examples = [e for e in _examples(4) if e.label != "ground"]  # "ground" has no texts
    ids = tokenize(loaded.tokenizer, [e.text for e in examples], 64)
    targets = np.array([LABELS.index(e.label) for e in examples])
    assert loop.init_head_from_prototypes(loaded.model, ids, targets, device=torch.device("cpu"), pad_id=0)
    model = loaded.model.eval()
    with torch.no_grad():
        weight = model.classifier.weight.clone()
        for c, label in enumerate(LABELS[:2]):
            rows = [ids[i] for i in range(len(ids)) if targets[i] == c]
            out = [model.bert(input_ids=torch.tensor([r])) for r in rows]
            head_input = [o.last_hidden_state[0].mean(dim=0) if pooling == "mean" else o.pooler_output[0] for o in out]
            pooled = torch.stack(head_input)
            mean = pooled.mean(dim=0)
            assert torch.allclose(weight[c], mean / mean.norm(), atol=1e-5), label
        assert torch.all(weight[2] == 0) and torch.all(model.classifier.bias == 0)
    assert loaded.model.training is False  # left in the mode it was in


def test_prototype_head_skips_a_head_that_is_not_linear(tiny_bert_dir):
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    loaded.model.classifier = torch.nn.Sequential(torch.nn.Linear(loaded.model.config.hidden_size, 3))
    before = loaded.model.classifier[0].weight.clone()
    assert not loop.init_head_from_prototypes(
        loaded.model, [[101, 102]], np.array([0]), device=torch.device("cpu"), pad_id=0
    )
    assert torch.equal(loaded.model.classifier[0].weight, before)


def test_prototype_head_learns_before_any_step(tiny_bert_dir):
    """With max_steps 1 at a vanishing learning rate the model is (almost) its initialisation:
    the prototype head separates the training classes better than the random one."""
    accuracies = {}
    for head in ("prototype", "random"):
        loaded, _ = _train(
            tiny_bert_dir,
            Hyperparameters(learning_rate=1e-12, batch_size=4, max_epochs=1, max_steps=1, head_init=head),
            validation=False,
        )
        train, _ = loop.stratified_split(_examples(), 0.25, 0)
        ids = tokenize(loaded.tokenizer, [e.text for e in train], 64)
        accuracies[head] = loop.evaluate(
            loaded.model,
            ids,
            np.array([LABELS.index(e.label) for e in train]),
            LABELS,
            device=torch.device("cpu"),
            pad_id=0,
        ).accuracy
    assert accuracies["prototype"] > accuracies["random"], accuracies


def test_equal_validation_accuracy_goes_to_the_lower_loss():
    best = Metrics(accuracy=0.8, macro_f1=0.1, per_class_f1={}, count=10, loss=1.2)
    assert loop.improves(dataclasses.replace(best, loss=0.9), best)
    assert not loop.improves(dataclasses.replace(best, loss=1.3), best)
    assert not loop.improves(dataclasses.replace(best, accuracy=0.7, loss=0.1), best)
    assert loop.improves(dataclasses.replace(best, accuracy=0.9, loss=5.0), best)
    assert loop.improves(best, None)


@pytest.mark.parametrize("balance", ["weighted_loss", "sampling"])
def test_class_balance_options_train(tiny_bert_dir, balance):
    _, outcome = _train(
        tiny_bert_dir, Hyperparameters(batch_size=4, max_epochs=1, min_steps_per_class=0, class_balance=balance)
    )
    assert outcome.steps == 5 and outcome.validation.count == 6


def test_cancel_is_checked_every_step(tiny_bert_dir):
    cancel = threading.Event()
    steps = []

    def on_progress(p):
        steps.append(p.step)
        if p.step == 2:
            cancel.set()

    with pytest.raises(errors.Cancelled, match="epoch 1 step 2"):
        _train(tiny_bert_dir, Hyperparameters(batch_size=2, max_epochs=3), cancel=cancel, on_progress=on_progress)
    assert steps == [1, 2]


def test_auto_training_precision_on_cpu_follows_native_bf16(monkeypatch):
    from lesslabels.modeling import inference

    cpu = torch.device("cpu")
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    assert loop.autocast_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    assert loop.autocast_dtype("auto", cpu) is None
    assert loop.autocast_dtype("bf16", cpu) == torch.bfloat16 and loop.autocast_dtype("fp32", cpu) is None


def test_bf16_on_cpu_trains(tiny_bert_dir):
    _, outcome = _train(
        tiny_bert_dir, Hyperparameters(batch_size=4, max_epochs=1, min_steps_per_class=0, precision="bf16")
    )
    assert outcome.steps == 5 and 0 <= outcome.validation.accuracy <= 1
    with pytest.raises(errors.InvalidArgument, match="fp16 needs CUDA"):
        _train(tiny_bert_dir, Hyperparameters(batch_size=4, max_epochs=1, precision="fp16"))


def test_a_warm_started_head_is_kept(tiny_bert_dir):
    torch.manual_seed(0)
    loaded = load_classifier(str(tiny_bert_dir), LABELS)
    before = loaded.model.classifier.weight.detach().clone()
    train, _ = loop.stratified_split(_examples(), 0.25, 0)
    loop.train(
        loaded.model,
        loaded.tokenizer,
        LABELS,
        train,
        [],
        Hyperparameters(learning_rate=1e-12, batch_size=4, max_steps=1),
        seed=0,
        device=torch.device("cpu"),
        fresh_head=False,
    )
    assert torch.allclose(loaded.model.classifier.weight, before, atol=1e-6)


# -- importing transformers -----------------------------------------------------------------------

_FIRST_START = """
import sys, threading
from lesslabels.common import server

def start(self):
    imported = "transformers" in sys.modules
    failures = []

    def load():
        try:
            from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"imported={imported} failures={failures}", flush=True)
    raise SystemExit(0)

server.Server.start = start
from lesslabels.{service}.main import main
main(["--checkpoint-dir", sys.argv[1], "--pool-address", "127.0.0.1:9"])
"""


@pytest.mark.parametrize("service", ["trainer", "scorer"])
def test_the_model_services_import_transformers_before_they_serve(service, tmp_path):
    """transformers 5 is not safe to import first from two threads at once ("cannot import name
    'AutoConfig' from 'transformers'"): found by the chaos suite (tests/chaos/test_chaos.py,
    seed 1401), where a restarted trainer took two StartTraining calls side by side. Each service
    imports it before it starts its server; then its threads may import it together."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LESSLABELS_")}
    proc = subprocess.run(
        [sys.executable, "-c", _FIRST_START.replace("{service}", service), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "imported=True failures=[]" in proc.stdout, proc.stdout + proc.stderr[-3000:]
