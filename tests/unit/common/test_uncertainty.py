"""Uncertainty scores: hand-computed values, scipy agreement, zeros, shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from lesslabels.common import uncertainty as u

PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [1.0, 0.0, 0.0],
        [1 / 3, 1 / 3, 1 / 3],
        [0.5, 0.5, 0.0],
        [0.1, 0.6, 0.3],
    ]
)


def test_entropy_hand_computed():
    expected = [
        -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
        0.0,
        math.log(3),
        math.log(2),
        -(0.1 * math.log(0.1) + 0.6 * math.log(0.6) + 0.3 * math.log(0.3)),
    ]
    np.testing.assert_allclose(u.entropy(PROBS), expected, atol=1e-6)
    assert u.entropy(PROBS)[0] == pytest.approx(0.80182, abs=1e-5)


def test_entropy_matches_scipy_including_zeros():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(8, 0.3), size=200)
    p[::7, 3] = 0.0  # exact zeros: 0 * log 0 must count as 0, not NaN
    p /= p.sum(axis=1, keepdims=True)
    ours = u.entropy(p)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, scipy.stats.entropy(p, axis=1), atol=1e-6)
    np.testing.assert_allclose(u.entropy(PROBS), scipy.stats.entropy(PROBS, axis=1), atol=1e-6)


def test_margin_hand_computed():
    np.testing.assert_allclose(u.margin(PROBS), [0.5, 1.0, 0.0, 0.0, 0.3], atol=1e-6)


def test_least_confidence_hand_computed():
    np.testing.assert_allclose(u.least_confidence(PROBS), [0.3, 0.0, 2 / 3, 0.5, 0.4], atol=1e-6)


def test_ratio_hand_computed():
    np.testing.assert_allclose(u.ratio(PROBS), [0.2 / 0.7, 0.0, 1.0, 1.0, 0.3 / 0.6], atol=1e-6)


def test_ratio_of_all_zero_row_is_zero_not_nan():
    assert u.ratio(np.zeros((1, 3)))[0] == 0.0


def test_single_class_and_empty():
    one = np.array([[1.0], [1.0]])
    np.testing.assert_allclose(u.margin(one), [1.0, 1.0])
    np.testing.assert_allclose(u.entropy(one), [0.0, 0.0])
    empty = np.zeros((0, 4))
    for fn, _ in u.SCORES.values():
        assert fn(empty).shape == (0,)


def test_scores_are_row_permutation_equivariant_and_vectorised():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(5), size=50)
    perm = rng.permutation(50)
    for fn, _ in u.SCORES.values():
        np.testing.assert_allclose(fn(p)[perm], fn(p[perm]))
        # class order does not matter either
        np.testing.assert_allclose(fn(p), fn(p[:, ::-1]), atol=1e-12)


def test_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        u.entropy(np.array([0.5, 0.5]))


def test_direction_flags():
    # a certain row and a uniform row: the uniform one must rank as more uncertain in every score
    p = np.array([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3]])
    for name, (fn, higher_is_uncertain) in u.SCORES.items():
        s = fn(p)
        assert (s[1] > s[0]) == higher_is_uncertain, name
