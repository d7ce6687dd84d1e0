"""The Python client of lesslabels: one class per service, plain Python and numpy results.

::

    from lesslabels.client import ScorerClient

    with ScorerClient("localhost:50053", token="...") as scorer:
        scores = scorer.score(["show me flights to denver"], run=1)
    print(scores.predicted, scores.probabilities.shape, scores.uncertainty.entropy)

- :class:`ScorerClient`: ``score(texts, checkpoint=|run=[, best=True]|base_model=)``, ``score_pool``
  (which samples: a :class:`SampleQuery`, or a dataset name and its fields as keywords).
- :class:`CoordinatorClient`: ``start_run``, ``watch``, ``get_run``, ``list_runs``, ``cancel``,
  ``resume``, ``pending_labels``, ``submit_labels``.
- :class:`PoolClient`: ``create_dataset``, ``get_dataset``, ``list_datasets``, ``set_dataset_labels``,
  ``delete_dataset``, ``import_samples``, ``import_file``, ``export_labels``, ``list_samples``,
  ``get_counts``, ``submit_labels``, ``list_annotators``, ``label_opinions``, ``review_labels``.

Runs are read and changed through the coordinator: the pool's run store (a run's rounds and
acquisitions, written by the coordinator) is an internal service, with no client here.

Every call has a deadline (``timeout=`` per client and per call); reads and idempotent writes
are retried on UNAVAILABLE; failures raise one hierarchy (:mod:`lesslabels.client.errors`):
``NotFound``, ``InvalidArgument``, ``FailedPrecondition``, ``AlreadyExists``,
``ResourceExhausted``, ``Unauthenticated``, ``PermissionDenied``, ``Unavailable`` (``DeadlineExceeded``), ``Cancelled``,
all subclasses of ``LessLabelsError``. TLS: ``root_certificates=`` (PEM bytes; with
``certificate_chain=`` and ``private_key=`` for mutual TLS), or ``tls=ClientTLS(ca=, cert=, key=)``
with file paths. The SDK never imports torch.
"""

from lesslabels.client.coordinator import CoordinatorClient
from lesslabels.client.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LessLabelsError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from lesslabels.client.pool import PoolClient
from lesslabels.client.scorer import ScorerClient
from lesslabels.contract.heads import FastHead
from lesslabels.client.suggestions import Suggestion, batch_model, suggest
from lesslabels.contract import Comparison, kept_round
from lesslabels.common.config import ClientTLS
from lesslabels.client.types import (
    Acquisition,
    Amount,
    Counts,
    Dataset,
    Hyperparameters,
    ImportSummary,
    LabelOpinion,
    LabelOpinions,
    LabelResult,
    Metrics,
    PendingLabels,
    PendingSample,
    PoolScores,
    Round,
    Run,
    RunConfig,
    RunDetail,
    RunEvent,
    Sample,
    SampleQuery,
    Scores,
    SplitCounts,
    StepProgress,
    StoppingRule,
    SubmittedLabels,
    Uncertainty,
)

__all__ = [
    "Acquisition",
    "AlreadyExists",
    "Amount",
    "Cancelled",
    "ClientTLS",
    "Comparison",
    "CoordinatorClient",
    "Counts",
    "Dataset",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FastHead",
    "Hyperparameters",
    "ImportSummary",
    "InvalidArgument",
    "LabelOpinion",
    "LabelOpinions",
    "LabelResult",
    "LessLabelsError",
    "Metrics",
    "NotFound",
    "PermissionDenied",
    "PendingLabels",
    "PendingSample",
    "PoolClient",
    "PoolScores",
    "ResourceExhausted",
    "Round",
    "Run",
    "RunConfig",
    "RunDetail",
    "RunEvent",
    "Sample",
    "SampleQuery",
    "ScorerClient",
    "Scores",
    "SplitCounts",
    "StepProgress",
    "StoppingRule",
    "SubmittedLabels",
    "Suggestion",
    "Unauthenticated",
    "batch_model",
    "kept_round",
    "suggest",
    "Unavailable",
    "Uncertainty",
]
