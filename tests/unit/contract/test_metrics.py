"""The one classification-metrics function, by hand, for label strings and class indices."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lesslabels.contract.metrics import Metrics, classification_metrics


def test_label_strings_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    m = classification_metrics(gold, pred)
    # a: TP1 gold2 pred2 -> F1 .5; b: TP2 gold2 pred3 -> .8; c: TP0 -> 0
    assert m.accuracy == pytest.approx(0.6)
    assert m.per_class_f1 == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})
    assert m.macro_f1 == pytest.approx(1.3 / 3)
    assert m.count == 5 and m.loss == 0.0


def test_class_indices_are_named_by_labels_and_absent_classes_left_out():
    # gold a a b b c ; predicted a b b b a; d is absent from both.
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c", "d"], loss=0.5)
    assert m.accuracy == pytest.approx(3 / 5) and m.count == 5 and m.loss == 0.5
    assert m.per_class_f1 == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_empty_input_and_mismatched_lengths():
    assert classification_metrics([], []) == Metrics()
    assert classification_metrics([], [], ["a"], loss=1.5) == Metrics(loss=1.5)
    with pytest.raises(ValueError, match="1 gold labels but 0 predictions"):
        classification_metrics(["a"], [])


def test_the_metrics_module_never_imports_torch():
    code = "import sys, lesslabels.contract.metrics, lesslabels.coordinator.steps; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
