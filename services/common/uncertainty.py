"""Uncertainty scores over class-probability arrays.

Pure, vectorised numpy: every function takes ``probs`` of shape ``[n_samples, n_classes]`` (rows
sum to 1) and returns ``[n_samples]`` float64 scores. Higher always means *more uncertain*, so an
acquisition step can take the top-k of any of them without knowing which one it holds.
No torch here: the coordinator imports this module.
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

__all__ = [
    "as_probabilities",
    "entropy",
    "least_confidence",
    "margin",
    "ratio",
    "top_two",
    "SCORES",
]


def as_probabilities(probs) -> np.ndarray:
    """Validate and return ``probs`` as a float64 ``[n_samples, n_classes]`` array."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"probabilities must be 2-D [n_samples, n_classes], got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError("probabilities need at least one class")
    return arr


def entropy(probs) -> np.ndarray:
    """Shannon entropy in nats, ``-sum p log p`` with ``0 * log 0 = 0``."""
    p = as_probabilities(probs)  # [n, c]
    return -xlogy(p, p).sum(axis=1)  # [n]


def top_two(probs) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second-largest probability per row (second is 0 with one class)."""
    p = as_probabilities(probs)  # [n, c]
    if p.shape[1] == 1:
        return p[:, 0].copy(), np.zeros(p.shape[0])
    part = np.partition(p, -2, axis=1)  # [n, c], last two columns hold the top two
    return part[:, -1], part[:, -2]


def margin(probs) -> np.ndarray:
    """Best minus second-best probability. Small margin = uncertain (this one is *not* inverted:
    it is the raw margin, take the smallest; see ``SCORES`` for the acquisition direction)."""
    first, second = top_two(probs)
    return first - second  # [n]


def least_confidence(probs) -> np.ndarray:
    """``1 - max p``: 0 for a certain prediction, ``1 - 1/c`` at uniform."""
    first, _ = top_two(probs)
    return 1.0 - first  # [n]


def ratio(probs) -> np.ndarray:
    """Ratio of confidence, ``p_second / p_best`` in [0, 1]; 1 when the top two tie.
    A row of all zeros (not a distribution) gives 0 rather than NaN."""
    first, second = top_two(probs)
    out = np.zeros_like(first)
    np.divide(second, first, out=out, where=first > 0)
    return out  # [n]


#: name -> (function, higher_is_more_uncertain). Margin is the one score where smaller is more uncertain.
SCORES = {
    "entropy": (entropy, True),
    "margin": (margin, False),
    "least_confidence": (least_confidence, True),
    "ratio": (ratio, True),
}
