"""Classification metrics as plain numpy (no torch): accuracy, macro F1, per-class F1."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Metrics:
    """Mirrors lesslabels.v1.EvalMetrics."""

    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    count: int
    loss: float = 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def classification_metrics(
    gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, labels: Sequence[str], *, loss: float = 0.0
) -> Metrics:
    """Metrics of predicted vs gold class indices; macro F1 over classes present in either."""
    gold = np.asarray(gold, dtype=np.int64)  # [n]
    predicted = np.asarray(predicted, dtype=np.int64)  # [n]
    if gold.shape != predicted.shape:
        raise ValueError(f"gold {gold.shape} and predicted {predicted.shape} differ in shape")
    n_classes = len(labels)
    if gold.size == 0:
        return Metrics(accuracy=0.0, macro_f1=0.0, per_class_f1={}, count=0, loss=loss)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)  # [gold, predicted]
    np.add.at(confusion, (gold, predicted), 1)
    true_pos = np.diag(confusion).astype(float)  # [n_classes]
    gold_count = confusion.sum(axis=1)  # [n_classes]
    pred_count = confusion.sum(axis=0)  # [n_classes]
    denominator = gold_count + pred_count
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros(n_classes), where=denominator > 0)
    present = denominator > 0
    per_class = {labels[i]: float(f1[i]) for i in range(n_classes) if present[i]}
    return Metrics(
        accuracy=float(true_pos.sum() / gold.size),
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class_f1=per_class,
        count=int(gold.size),
        loss=float(loss),
    )
