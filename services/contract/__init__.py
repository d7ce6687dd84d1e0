"""The contract every service shares: typed values with their bounds declared once and one
``validate()`` each. No torch and no protobuf here; ``lesslabels.contract.wire`` holds every
protobuf codec and enum map of these types.

- ``vocabulary``: the names of splits, sources, states, steps, strategies and training choices.
- ``hyperparameters``: ``Hyperparameters``, how a round fine-tunes.
- ``run``: ``RunConfig``, ``Run``, ``Round``, ``Acquisition``, ``TrainRequest`` and friends;
  ``Comparison`` (from ``common.best``, the kept-model rule) is a round's paired comparison.
- ``samples``: ``SampleQuery``, which samples of a dataset a call is about.
- ``heads``: ``FastHead``, the scorer's logistic-regression head on cached embeddings, as a model reference.
- ``shards``: ``Shard``, one of ``count`` disjoint parts of a listing (``MAX_SHARDS``, ``all_shards``,
  ``bucket``).
- ``metrics``, ``scores``: ``Metrics`` (and ``classification_metrics``, which computes them),
  ``Uncertainty``, ``PoolScores``.
"""

from lesslabels.common.best import Comparison
from lesslabels.contract.heads import FastHead
from lesslabels.contract.hyperparameters import Hyperparameters
from lesslabels.contract.metrics import Metrics
from lesslabels.contract.run import (
    DEFAULT_REFILL_EVERY,
    MAX_ANNOTATOR_LENGTH,
    Acquisition,
    Amount,
    LabelResult,
    PendingBatch,
    Round,
    Run,
    RunConfig,
    RunEvent,
    StepProgress,
    StoppingRule,
    TrainRequest,
    kept_round,
)
from lesslabels.contract.samples import SampleQuery
from lesslabels.contract.scores import EmbedProgress, PoolScores, Uncertainty
from lesslabels.contract.shards import Shard

__all__ = [
    "DEFAULT_REFILL_EVERY",
    "MAX_ANNOTATOR_LENGTH",
    "Acquisition",
    "Amount",
    "EmbedProgress",
    "FastHead",
    "Comparison",
    "Hyperparameters",
    "LabelResult",
    "Metrics",
    "PendingBatch",
    "PoolScores",
    "Round",
    "Run",
    "RunConfig",
    "RunEvent",
    "SampleQuery",
    "Shard",
    "StepProgress",
    "StoppingRule",
    "TrainRequest",
    "Uncertainty",
    "kept_round",
]
