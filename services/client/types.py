"""Plain-Python results of the SDK: frozen dataclasses and numpy arrays, never protobuf.

Run configuration, runs, rounds, metrics, acquisitions and run events are the system's shared
contract (``lesslabels.contract``), so there is one vocabulary: strategies, states and steps are
strings (``"entropy"``, ``"RUNNING"``, ``"TRAIN"``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lesslabels.contract import (
    Acquisition,
    Amount,
    Hyperparameters,
    LabelResult,
    Metrics,
    PoolScores,
    Round,
    Run,
    RunConfig,
    RunEvent,
    SampleQuery,
    StepProgress,
    StoppingRule,
    Uncertainty,
)

__all__ = [
    "Acquisition",
    "Amount",
    "Counts",
    "Dataset",
    "Duplicate",
    "Hyperparameters",
    "ImportSummary",
    "LabelOpinion",
    "LabelOpinions",
    "LabelResult",
    "Metrics",
    "PendingLabels",
    "PendingSample",
    "PoolScores",
    "Round",
    "Run",
    "RunConfig",
    "RunDetail",
    "RunEvent",
    "Sample",
    "SamplePage",
    "SampleQuery",
    "Scores",
    "SplitCounts",
    "StepProgress",
    "StoppingRule",
    "SubmittedLabels",
    "Uncertainty",
]


# ---------------------------------------------------------------- scorer


@dataclasses.dataclass(frozen=True, eq=False)
class Scores:
    """The scores of ``n`` texts under one checkpoint, rows in the order of the texts sent."""

    checkpoint_id: str
    labels: tuple[str, ...]  # the k class names, column order of ``probabilities``
    probabilities: np.ndarray  # [n, k] float32 ([n, 0] when probabilities were not asked for)
    predicted: tuple[str, ...]  # [n] the most probable label of each text
    uncertainty: Uncertainty
    truncated: np.ndarray  # [n] bool: the text was longer than the model's limit and was cut
    embeddings: np.ndarray | None = None  # [n, d] float32 when asked for

    def __len__(self) -> int:
        return len(self.predicted)

    def to_pandas(self) -> Any:
        """A pandas DataFrame, a row per text: ``predicted``, the uncertainties, ``p_<label>`` per
        class, ``truncated`` (``lesslabels.client.frames``)."""
        from lesslabels.client import frames

        return frames.scores_frame(self)


# ---------------------------------------------------------------- pool


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    labels: tuple[str, ...]
    description: str = ""
    train_count: int = 0
    test_count: int = 0
    dev_count: int = 0
    labelled_count: int = 0
    created_at: str = ""


@dataclasses.dataclass(frozen=True)
class Duplicate:
    """Rows (0-based) of one import whose text repeats; ``first_row`` -1: already in the dataset."""

    rows: tuple[int, ...]
    text: str
    first_row: int


@dataclasses.dataclass(frozen=True)
class ImportSummary:
    dataset: str
    imported: int
    by_label: dict[str, int]
    format: str  # "auto", "csv", "csv-header" or "jsonl": the format the pool read
    duplicate_rows: int = 0  # every row that repeats a text
    duplicates: tuple[Duplicate, ...] = ()  # the first 100 texts, each with its first 100 rows
    by_split: dict[str, int] = dataclasses.field(default_factory=dict)
    columns: dict[str, str] = dataclasses.field(default_factory=dict)  # field -> column (or JSON key) read
    checked_only: bool = False  # a dry run (check=True): nothing was stored
    replayed: bool = False  # the summary of an earlier import with the same request_id: nothing stored now


@dataclasses.dataclass(frozen=True)
class Sample:
    id: int
    text: str
    split: str  # "train", "test" or "dev"
    label: str = ""  # the label in scope (the run's, or the dataset's own)
    gold_label: str = ""  # only when asked for
    row: int = 0
    dataset: str = ""
    # Where ``label`` came from (empty when unlabelled): who gave it ("oracle" in a simulated run),
    # its source ("seed", "oracle" or "human") and when (RFC 3339, UTC).
    annotator: str = ""
    label_source: str = ""
    labelled_at: str = ""


@dataclasses.dataclass(frozen=True)
class Annotator:
    """Someone who gave labels in force in a scope: how many, and when the latest."""

    name: str
    labels: int
    last_labelled_at: str  # RFC 3339, UTC


@dataclasses.dataclass(frozen=True)
class LabelOpinion:
    """One person's latest label of a text (or a reviewer's resolution)."""

    annotator: str
    label: str
    labelled_at: str  # RFC 3339, UTC


@dataclasses.dataclass(frozen=True)
class LabelOpinions:
    """A text two or more people labelled: each one's latest label, the label in force, and whether
    it is flagged (``disputed``: they disagree and no review resolved it since)."""

    sample_id: int
    text: str
    label: str
    opinions: tuple[LabelOpinion, ...]
    disputed: bool
    review: LabelOpinion | None = None


@dataclasses.dataclass(frozen=True)
class SamplePage:
    """One page of a sample listing; ``next_page_token`` resumes after it ("" after the last)."""

    samples: tuple[Sample, ...]
    next_page_token: str
    total: int  # matching samples, as the pool counted them when the listing began


@dataclasses.dataclass(frozen=True)
class SplitCounts:
    total: int = 0
    labelled: int = 0
    labelled_by_label: dict[str, int] = dataclasses.field(default_factory=dict)
    gold_by_label: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Counts:
    dataset: str
    run_id: int
    train: SplitCounts
    test: SplitCounts
    dev: SplitCounts


# ---------------------------------------------------------------- coordinator


@dataclasses.dataclass(frozen=True)
class RunDetail:
    run: Run
    rounds: tuple[Round, ...]
    #: The coordinator's latest line about a run in progress, and its step's measured progress.
    message: str = ""
    progress: StepProgress | None = None

    def to_pandas(self) -> Any:
        """The rounds as a pandas DataFrame, the learning curve: ``labelled_count`` against
        ``test_accuracy`` (and ``test_macro_f1``, validation metrics, timings; ``lesslabels.client.frames``)."""
        from lesslabels.client import frames

        return frames.rounds_frame(self.rounds)


@dataclasses.dataclass(frozen=True)
class PendingSample:
    sample_id: int
    text: str
    score: float = 0.0  # the acquisition score that selected it
    label: str = ""  # "" until labelled


@dataclasses.dataclass(frozen=True)
class PendingLabels:
    """The batch a human-oracle run waits for."""

    run_id: int
    round: int
    labels: tuple[str, ...]
    samples: tuple[PendingSample, ...]
    remaining: int


@dataclasses.dataclass(frozen=True)
class SubmittedLabels:
    result: LabelResult
    remaining: int  # samples of the pending batch still without a label
