"""The headline benchmark's summary arithmetic (bench/headline.py): the pass/fail reading of the
recorded results rests on it, so it is checked on hand-made curves."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def headline():
    spec = importlib.util.spec_from_file_location("headline_bench", ROOT / "bench" / "headline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(arm, seed, accuracies, labelled=(100, 200, 300), pool=1000):
    return {"arm": arm, "seed": seed, "pool_size": pool, "wall_seconds": 1.0,
            "rounds": [{"labelled": n, "accuracy": a} for n, a in zip(labelled, accuracies, strict=True)]}


def test_area_under_curve_is_the_mean_accuracy_over_the_range(headline):
    x = np.array([0.1, 0.2, 0.3])
    assert headline.area_under_curve(x, np.array([0.9, 0.9, 0.9])) == pytest.approx(0.9)
    assert headline.area_under_curve(x, np.array([0.90, 0.95, 1.00])) == pytest.approx(0.95)
    # Trapezoids, not the mean of the points: uneven spacing weighs the longer interval more.
    assert headline.area_under_curve(np.array([0.1, 0.2, 0.5]), np.array([0.8, 1.0, 1.0])) == pytest.approx(
        (0.1 * 0.9 + 0.3 * 1.0) / 0.4)


def test_summary_pairs_each_strategy_with_random_on_the_same_seed(headline):
    results = [
        _result("random", 0, [0.90, 0.95, 0.97]), _result("random", 1, [0.92, 0.96, 0.98]),
        _result("entropy", 0, [0.90, 0.97, 0.99]), _result("entropy", 1, [0.92, 0.94, 0.98]),
    ]
    full = [_result("full", 0, [0.99], labelled=(1000,)), _result("full", 1, [0.99], labelled=(1000,))]
    summary = headline.summarise(results, full)
    assert summary["target_accuracy"] == pytest.approx(0.985)
    random, entropy = summary["arms"]["random"], summary["arms"]["entropy"]
    assert "auc_minus_random_per_seed" not in random
    diffs = entropy["auc_minus_random_per_seed"]
    assert diffs[0] == pytest.approx(0.9575 - 0.9425)  # entropy above on seed 0 (AUCs worked by hand)
    assert diffs[1] < 0  # and below on seed 1
    assert entropy["auc"] == pytest.approx(np.mean(entropy["auc_per_seed"]))
    # Labels to the target: the first point of the mean curve at or above it; per seed likewise.
    assert entropy["labels_to_target_mean_curve"] == 300 and entropy["labels_to_target_per_seed"] == [300, None]
    assert random["labels_to_target_mean_curve"] is None
    text = headline.markdown(summary, 1000, {"seeds": [0, 1], "full_from": "elsewhere.json"})
    assert "full arm of elsewhere.json" in text and "above random on 1 of 2 seeds" in text


def test_a_file_with_its_own_full_arm_ignores_the_other_file(headline):
    results = [_result("full", 0, [0.95], labelled=(1000,)), _result("random", 0, [0.90, 0.95, 0.96])]
    other = [_result("full", 0, [0.99], labelled=(1000,))]
    assert headline.summarise(results, other)["target_accuracy"] == pytest.approx(0.945)
