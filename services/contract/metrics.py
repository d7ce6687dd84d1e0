"""A model's metrics on labelled texts (mirrors lesslabels.v1.EvalMetrics); computed by
``lesslabels.common.metrics.classification_metrics``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metrics:
    accuracy: float = 0.0
    macro_f1: float = 0.0
    per_class_f1: dict[str, float] = dataclasses.field(default_factory=dict)
    count: int = 0
    loss: float = 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
