"""Domain types of the coordinator: run configuration (with defaults and validation), runs,
rounds, acquisitions, scores. No protobuf here: ``convert`` translates at the edge."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from lesslabels.common import vocabulary
from lesslabels.common.best import pick_best
from lesslabels.common.metrics import Metrics as Metrics  # a round's test metrics, re-exported
from lesslabels.common.errors import InvalidArgument, quote
from lesslabels.coordinator import strategies

STATES = vocabulary.RUN_STATES
#: States a coordinator picks up on start-up and keeps advancing.
ACTIVE_STATES = vocabulary.ACTIVE_RUN_STATES
#: States a watch stream ends on.
FINAL_STATES = vocabulary.FINAL_RUN_STATES
STEPS = vocabulary.RUN_STEPS
ORACLES = vocabulary.ORACLES
JOB_FINAL_STATES = vocabulary.FINAL_JOB_STATES

DEFAULT_SEED_FRACTION = 0.05
DEFAULT_BATCH_FRACTION = 0.10
DEFAULT_MAX_ROUNDS = 5


@dataclasses.dataclass(frozen=True)
class Amount:
    """A count or a fraction of the training pool (exactly one is set)."""

    count: int = 0
    fraction: float = 0.0

    def resolve(self, pool_size: int) -> int:
        if self.count:
            return self.count
        return max(1, int(round(self.fraction * pool_size)))

    def validate(self, what: str) -> None:
        if self.count and self.fraction:
            raise InvalidArgument(f"{what}: give a count or a fraction, not both")
        if self.count < 0:
            raise InvalidArgument(f"{what}: count must be positive, got {self.count}")
        if not self.count and not 0 < self.fraction <= 1:
            raise InvalidArgument(f"{what}: fraction must be in (0, 1], got {self.fraction}")

    def describe(self) -> str:
        return str(self.count) if self.count else f"{self.fraction:g} of the pool"


@dataclasses.dataclass(frozen=True)
class StoppingRule:
    label_budget: Amount | None = None
    max_rounds: int = 0
    target_accuracy: float = 0.0
    stable_agreement: float = 0.0

    @property
    def any_set(self) -> bool:
        return bool(self.label_budget or self.max_rounds or self.target_accuracy or self.stable_agreement)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    dataset: str
    name: str = ""
    base_model: str = ""
    strategy: str = ""
    seed_size: Amount | None = None
    seed_strategy: str = ""
    batch_size: Amount | None = None
    stopping: StoppingRule = StoppingRule()
    oracle: str = ""
    random_seed: int = 0
    # Fine-tuning settings, passed through to the trainer untouched (proto field name -> value).
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    warm_start: bool = False
    # Unlabelled samples each round scores: a fresh seeded random subset of the unlabelled pool (0 = all of it).
    candidates: int = 0


def with_defaults(config: RunConfig) -> RunConfig:
    """Validate ``config`` and fill in the documented defaults (see run.proto).

    Raises InvalidArgument naming the first bad field."""
    if not config.dataset:
        raise InvalidArgument("run config: dataset is required")
    strategy = config.strategy or "entropy"
    if strategy not in strategies.QUERY_STRATEGIES:
        raise InvalidArgument(f"run config: unknown strategy {quote(strategy)}")
    seed_strategy = config.seed_strategy or "random"
    if seed_strategy not in strategies.SEED_STRATEGIES:
        raise InvalidArgument(f"run config: unknown seed strategy {quote(seed_strategy)}")
    oracle = config.oracle or "simulated"
    if oracle not in ORACLES:
        raise InvalidArgument(f"run config: unknown oracle mode {quote(oracle)}")
    seed_size = config.seed_size or Amount(fraction=DEFAULT_SEED_FRACTION)
    seed_size.validate("seed_size")
    batch_size = config.batch_size or Amount(fraction=DEFAULT_BATCH_FRACTION)
    batch_size.validate("batch_size")
    stop = config.stopping
    if stop.label_budget is not None:
        stop.label_budget.validate("stopping.label_budget")
    if stop.max_rounds < 0:
        raise InvalidArgument(f"stopping.max_rounds must not be negative, got {stop.max_rounds}")
    for name in ("target_accuracy", "stable_agreement"):
        value = getattr(stop, name)
        if not 0 <= value <= 1 or math.isnan(value):
            raise InvalidArgument(f"stopping.{name} must be in [0, 1], got {value}")
    if not stop.any_set:
        stop = dataclasses.replace(stop, max_rounds=DEFAULT_MAX_ROUNDS)
    if config.candidates < 0:
        raise InvalidArgument(
            f"run config: candidates must not be negative, got {config.candidates} "
            "(the unlabelled samples a round scores; 0 = the whole unlabelled pool)"
        )
    for name, value in config.hyperparameters.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise InvalidArgument(f"hyperparameters.{name} must not be negative, got {value}")
    return dataclasses.replace(
        config,
        strategy=strategy,
        seed_strategy=seed_strategy,
        oracle=oracle,
        seed_size=seed_size,
        batch_size=batch_size,
        stopping=stop,
    )


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    labels: tuple[str, ...]
    train_count: int
    test_count: int


@dataclasses.dataclass(frozen=True)
class RunInfo:
    id: int
    config: RunConfig
    state: str
    step: str
    round: int
    error: str = ""
    labelled_count: int = 0
    pool_size: int = 0
    stop_reason: str = ""
    created_at: str = ""
    updated_at: str = ""


@dataclasses.dataclass(frozen=True)
class RoundInfo:
    run_id: int
    index: int
    labelled_count: int = 0
    train_job_id: str = ""
    checkpoint_id: str = ""
    test: Metrics | None = None
    agreement: float = 0.0
    selected_count: int = 0
    started_at: str = ""
    finished_at: str = ""
    train_seconds: float = 0.0
    score_seconds: float = 0.0
    validation: Metrics | None = None


def kept_round(rounds: Sequence[RoundInfo]) -> RoundInfo | None:
    """The round whose model the run keeps, by validation accuracy, never test: the latest round
    unless an earlier one leads it by more than two standard errors (``common.best``)."""
    trained = [r for r in rounds if r.checkpoint_id]
    return pick_best(
        trained,
        lambda r: (r.validation.accuracy, r.validation.count) if r.validation and r.validation.count else None,
        lambda r: (r.index,),
    )


@dataclasses.dataclass(frozen=True)
class Acquisition:
    sample_id: int
    round: int
    strategy: str = ""
    score: float = 0.0
    label: str = ""
    text: str = ""


@dataclasses.dataclass(frozen=True)
class LabelResult:
    recorded: int = 0
    unchanged: int = 0
    changed: int = 0
    labels: tuple[tuple[int, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class PendingBatch:
    run_id: int
    round: int
    labels: tuple[str, ...]
    samples: tuple[Acquisition, ...]

    @property
    def remaining(self) -> int:
        return sum(1 for s in self.samples if not s.label)


@dataclasses.dataclass(frozen=True)
class TrainRequest:
    dataset: str
    run_id: int
    round: int
    base_model: str
    hyperparameters: dict
    seed: int
    warm_start_checkpoint: str
    request_id: str


@dataclasses.dataclass(frozen=True)
class JobInfo:
    id: str
    state: str
    checkpoint_id: str = ""
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    validation: Metrics | None = None


@dataclasses.dataclass(frozen=True)
class TrainProgress:
    job_id: str
    state: str
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    message: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class Uncertainty:
    """Per-text uncertainty, each an array of shape [n] (higher = less certain, except margin)."""

    entropy: np.ndarray  # [n] float64
    margin: np.ndarray  # [n] float64: top-1 minus top-2 probability (small = uncertain)
    least_confidence: np.ndarray  # [n] float64: 1 - top-1 probability
    ratio: np.ndarray  # [n] float64: top-2 / top-1 probability


@dataclasses.dataclass(frozen=True)
class PoolScores:
    """A scored split (or one chunk of it), in the order the scorer returned it."""

    labels: tuple[str, ...]
    sample_ids: np.ndarray  # [n] int64
    predicted: np.ndarray  # [n] str
    probabilities: np.ndarray | None = None  # [n, c] float64, in label order
    embeddings: np.ndarray | None = None  # [n, d] float32
    gold: np.ndarray | None = None  # [n] str, test/dev splits only
    uncertainty: Uncertainty | None = None  # [n] each, as the scorer computed them from the probabilities


@dataclasses.dataclass(frozen=True)
class RunEvent:
    run: RunInfo
    round: RoundInfo | None = None
    step_progress: float = 0.0
    message: str = ""
