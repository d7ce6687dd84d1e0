"""The classification metrics of ``lesslabels.common.metrics``, under the name the trainer's engine
imports them by."""

from lesslabels.common.metrics import Metrics, classification_metrics

__all__ = ["Metrics", "classification_metrics"]
