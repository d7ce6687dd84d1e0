"""A model's metrics on labelled texts (mirrors lesslabels.v1.EvalMetrics) and
``classification_metrics``, which computes them in plain numpy (no torch, no scikit-learn):
accuracy, macro F1 and per-class F1 of predicted against gold labels. The one implementation, used
by the trainer (validation), the coordinator (each round's test split) and the benchmarks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Metrics:
    accuracy: float = 0.0
    macro_f1: float = 0.0
    per_class_f1: dict[str, float] = dataclasses.field(default_factory=dict)
    count: int = 0
    loss: float = 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def classification_metrics(
    gold: Sequence | np.ndarray,
    predicted: Sequence | np.ndarray,
    labels: Sequence[str] | None = None,
    *,
    loss: float = 0.0,
) -> Metrics:
    """Metrics of ``predicted`` against ``gold``: label strings, or class indices into ``labels``.

    Macro F1 averages the classes present in gold or predictions (a class absent from both has
    no F1); ``per_class_f1`` has exactly those classes. ValueError when the lengths differ."""
    gold_arr = np.asarray(gold)  # [n]
    pred_arr = np.asarray(predicted)  # [n]
    if gold_arr.shape != pred_arr.shape:
        raise ValueError(f"{gold_arr.size} gold labels but {pred_arr.size} predictions")
    n = gold_arr.size
    if n == 0:
        return Metrics(loss=float(loss))
    if labels is not None:
        names = np.asarray(labels, dtype=object)
        gold_arr, pred_arr = names[gold_arr.astype(np.int64)], names[pred_arr.astype(np.int64)]
    classes, codes = np.unique(np.concatenate([gold_arr, pred_arr]).astype(str), return_inverse=True)
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
        per_class_f1={str(label): float(score) for label, score in zip(classes, f1, strict=False)},
        count=int(n),
        loss=float(loss),
    )
