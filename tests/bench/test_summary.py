"""The headline benchmark's summary arithmetic (bench/headline.py): the pass/fail reading of the
recorded results rests on it, so it is checked on hand-made curves."""

from __future__ import annotations


import numpy as np
import pytest

from tests.helpers import load_bench


@pytest.fixture(scope="module")
def headline():
    return load_bench("headline.py")


def _result(arm, seed, accuracies, labelled=(100, 200, 300), pool=1000):
    return {
        "arm": arm,
        "seed": seed,
        "pool_size": pool,
        "wall_seconds": 1.0,
        "rounds": [{"labelled": n, "accuracy": a} for n, a in zip(labelled, accuracies, strict=True)],
    }


def test_area_under_curve_is_the_mean_accuracy_over_the_range(headline):
    x = np.array([0.1, 0.2, 0.3])
    assert headline.area_under_curve(x, np.array([0.9, 0.9, 0.9])) == pytest.approx(0.9)
    assert headline.area_under_curve(x, np.array([0.90, 0.95, 1.00])) == pytest.approx(0.95)
    # Trapezoids, not the mean of the points: uneven spacing weighs the longer interval more.
    assert headline.area_under_curve(np.array([0.1, 0.2, 0.5]), np.array([0.8, 1.0, 1.0])) == pytest.approx(
        (0.1 * 0.9 + 0.3 * 1.0) / 0.4
    )


def test_summary_pairs_each_strategy_with_random_on_the_same_seed(headline):
    results = [
        _result("random", 0, [0.90, 0.95, 0.97]),
        _result("random", 1, [0.92, 0.96, 0.98]),
        _result("entropy", 0, [0.90, 0.97, 0.99]),
        _result("entropy", 1, [0.92, 0.94, 0.98]),
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


# -- bench/clinc_headline.py: the many-class headline's targets -------------------------------------


@pytest.fixture(scope="module")
def clinc():
    return load_bench("clinc_headline.py")


def test_largest_fall_between_rounds(clinc):
    assert clinc.largest_fall(np.array([0.5, 0.6, 0.58, 0.7, 0.65])) == pytest.approx(0.05)
    assert clinc.largest_fall(np.array([0.5, 0.6, 0.7])) == 0.0
    assert clinc.largest_fall(np.array([0.5])) == 0.0


def test_accuracy_at_a_fraction_interpolates_between_rounds(clinc):
    x, y = np.array([0.02, 0.06, 0.12]), np.array([0.5, 0.7, 0.82])
    assert clinc.accuracy_at(0.10, x, y) == pytest.approx(0.78)  # 0.7 + (0.04 / 0.06) * 0.12
    assert clinc.accuracy_at(0.06, x, y) == pytest.approx(0.7)
    assert clinc.accuracy_at(0.20, x, y) is None and clinc.accuracy_at(0.01, x, y) is None


def test_targets_read_off_a_summary(headline, clinc):
    labelled = (100, 500, 1000)  # pool 5000: 2 %, 10 %, 20 %
    results = [
        _result("full", 0, [0.90], labelled=(5000,), pool=5000),
        _result("best", 0, [0.60, 0.88, 0.92], labelled=labelled, pool=5000),
        _result("random", 0, [0.60, 0.80, 0.79], labelled=labelled, pool=5000),
    ]
    t = clinc.targets(headline.summarise(results))
    best, random = t["arms"]["best"], t["arms"]["random"]
    assert best["largest_fall"] == 0.0 and best["falls_ok"]
    assert best["accuracy_at_10pct"] == pytest.approx(0.88) and best["gap_to_full_at_10pct"] == pytest.approx(0.02)
    assert best["gap_ok"] is True
    assert random["largest_fall"] == pytest.approx(0.01) and not random["falls_ok"]
    assert random["gap_to_full_at_10pct"] == pytest.approx(0.10) and random["gap_ok"] is False
    # AUC over 2-20 %: trapezoids / width; best (0.6, .88, .92) vs random (0.6, .8, .79).
    auc_best = (0.08 * (0.60 + 0.88) / 2 + 0.10 * (0.88 + 0.92) / 2) / 0.18
    auc_random = (0.08 * (0.60 + 0.80) / 2 + 0.10 * (0.80 + 0.79) / 2) / 0.18
    assert t["best_minus_random_auc"] == pytest.approx(auc_best - auc_random) and t["best_above_random"]
    assert "MISSED" in clinc.targets_markdown(t) and "best minus random AUC: +" in clinc.targets_markdown(t)


def test_clinc_arms_use_the_trainer_defaults(clinc):
    import argparse

    from lesslabels.v1 import run_pb2

    args = argparse.Namespace(
        learning_rate=1e-4,
        batch_size=16,
        min_steps=250,
        threads=1,
        full_epochs=3,
        best_strategy="clustered-margin",
        seed_size=0.02,
        batch=0.02,
        rounds=10,
        min_steps_per_class=0,
    )
    best = clinc.arm_config("best", 1, args)
    assert best.dataset == "clinc150" and best.strategy == run_pb2.STRATEGY_CLUSTERED_MARGIN
    assert best.seed_strategy == run_pb2.SEED_STRATEGY_DIVERSE and best.stopping.max_rounds == 10
    # the recipe's own fields are left at zero, i.e. the trainer's defaults
    assert (
        best.hyperparameters.max_epochs,
        best.hyperparameters.min_steps_per_class,
        best.hyperparameters.head_init,
        best.hyperparameters.holdout_min_per_class,
    ) == (0, 0, 0, 0)
    random = clinc.arm_config("random", 1, args)
    assert random.strategy == run_pb2.STRATEGY_RANDOM and random.seed_size.fraction == best.seed_size.fraction
    assert clinc.arm_config("full", 0, args).hyperparameters.max_epochs == 3
    with pytest.raises(SystemExit, match="unknown arm 'original'"):
        clinc.arm_config("original", 0, args)
