"""Test-split metrics from gold and predicted label strings, in numpy (no torch, no sklearn)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lesslabels.coordinator.model import Metrics


def classification_metrics(gold: Sequence[str] | np.ndarray, predicted: Sequence[str] | np.ndarray) -> Metrics:
    """Accuracy, macro F1 over the classes present in gold or predictions, per-class F1."""
    gold = np.asarray(gold, dtype=object)  # [n]
    predicted = np.asarray(predicted, dtype=object)  # [n]
    if gold.shape != predicted.shape:
        raise ValueError(f"{gold.size} gold labels but {predicted.size} predictions")
    n = gold.size
    if n == 0:
        return Metrics()
    classes, codes = np.unique(np.concatenate([gold, predicted]).astype(str), return_inverse=True)
    g, p = codes[:n], codes[n:]  # [n] each
    c = classes.size
    true_positive = np.bincount(g[g == p], minlength=c).astype(np.float64)  # [c]
    gold_count = np.bincount(g, minlength=c)  # [c]
    pred_count = np.bincount(p, minlength=c)  # [c]
    # F1 = 2 TP / (|gold| + |pred|); every class here occurs in one of them, so no 0/0.
    f1 = 2 * true_positive / (gold_count + pred_count)  # [c]
    return Metrics(
        accuracy=float((g == p).mean()),
        macro_f1=float(f1.mean()),
        per_class_f1={str(label): float(score) for label, score in zip(classes, f1, strict=True)},
        count=int(n),
    )


def agreement(ids_a: np.ndarray, predicted_a: np.ndarray, ids_b: np.ndarray, predicted_b: np.ndarray) -> float:
    """Fraction of the samples scored in both rounds whose predicted label is the same."""
    common, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    if common.size == 0:
        return 0.0
    return float((np.asarray(predicted_a)[ia] == np.asarray(predicted_b)[ib]).mean())
