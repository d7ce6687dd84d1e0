"""How much a run's predictions changed between rounds (the test-split metrics are
``lesslabels.contract.metrics``)."""

from __future__ import annotations

import numpy as np


def agreement(ids_a: np.ndarray, predicted_a: np.ndarray, ids_b: np.ndarray, predicted_b: np.ndarray) -> float:
    """Fraction of the samples scored in both rounds whose predicted label is the same."""
    common, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    if common.size == 0:
        return 0.0
    return float((np.asarray(predicted_a)[ia] == np.asarray(predicted_b)[ib]).mean())
