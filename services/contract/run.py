"""A run as every service sees it: its configuration (bounds declared once, one ``validate()``),
its state, its rounds and what each round acquired. No protobuf here (``contract.wire``)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence

from lesslabels.common.best import Comparison, pick_kept
from lesslabels.common.errors import InvalidArgument, quote
from lesslabels.common.plaintext import name_problem
from lesslabels.contract import vocabulary
from lesslabels.contract.hyperparameters import Hyperparameters
from lesslabels.contract.metrics import Metrics

DEFAULT_STRATEGY = "entropy"
DEFAULT_SEED_STRATEGY = "random"
DEFAULT_ORACLE = "simulated"
DEFAULT_SEED_FRACTION = 0.05
DEFAULT_BATCH_FRACTION = 0.10
DEFAULT_MAX_ROUNDS = 5
#: Asynchronous runs: labels between refills of the queue, and the bounds of the setting.
DEFAULT_REFILL_EVERY = 10
MAX_REFILL_EVERY = 10_000
MAX_ANNOTATOR_SECONDS = 3600.0
#: Largest overlap: every queued text labelled by two people.
MAX_OVERLAP = 1.0
#: Longest annotator name a label or a queue request may carry.
MAX_ANNOTATOR_LENGTH = 128

#: Longest dataset name, run name and base model accepted.
MAX_STRING = {"dataset": 64, "name": 256, "base_model": 1024}
#: Largest count of an Amount (seed_size, batch_size, stopping.label_budget).
MAX_COUNT = 10_000_000
MAX_ROUNDS = 100_000
MAX_SEED = 2**32 - 1  # numpy's generators take seeds below 2**32
#: Largest number of candidates a round may score (more than the unlabelled pool means all of it).
MAX_CANDIDATES = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Amount:
    """A count or a fraction of the training pool (exactly one is set)."""

    count: int = 0
    fraction: float = 0.0

    def resolve(self, pool_size: int) -> int:
        if self.count:
            return self.count
        return max(1, int(round(self.fraction * pool_size)))

    def problems(self, what: str) -> list[str]:
        if self.count and self.fraction:
            return [f"{what}: give a count or a fraction, not both"]
        if self.count:
            if not 1 <= self.count <= MAX_COUNT:
                return [f"{what}.count must be in [1, {MAX_COUNT}], got {self.count}"]
        elif not self.fraction:
            return [f"{what}: give a count or a fraction"]
        elif not (math.isfinite(self.fraction) and 0 < self.fraction <= 1):
            return [f"{what}.fraction must be in (0, 1], got {self.fraction}"]
        return []

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
    """What a run does. Empty strings and unset amounts take the defaults of ``with_defaults``;
    ``hyperparameters`` may be given as a mapping of field names (``{"max_epochs": 3}``)."""

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
    hyperparameters: Hyperparameters = Hyperparameters()
    warm_start: bool = False
    # Unlabelled samples each round scores: a fresh seeded random subset of the unlabelled pool (0 = all of it).
    candidates: int = 0
    #: Rounds as model versions, not barriers (run.proto); None: on for the human oracle, off for simulated.
    asynchronous: bool | None = None
    #: Asynchronous runs: labels between refills of the queue (0 = the default).
    refill_every: int = 0
    #: Simulated asynchronous runs: seconds the simulated annotator spends on each label.
    annotator_seconds: float = 0.0
    #: Asynchronous human runs: the share of queued texts two people label (``in_overlap``), in [0, 1].
    overlap: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.hyperparameters, Mapping):
            object.__setattr__(self, "hyperparameters", Hyperparameters.from_mapping(self.hyperparameters))

    def problems(self) -> list[str]:
        """Every impossible value, each naming its field; empty when all are fine."""
        found = []
        if not self.dataset:
            found.append("dataset is required")
        for key, limit in MAX_STRING.items():
            value = getattr(self, key)
            if len(value) > limit:
                found.append(f"{key} is {len(value)} characters; at most {limit}")
        found.extend(p for key in ("dataset", "name", "base_model") if (p := name_problem(getattr(self, key), key)))
        for key, names in (
            ("strategy", vocabulary.STRATEGIES),
            ("seed_strategy", vocabulary.SEED_STRATEGIES),
            ("oracle", vocabulary.ORACLES),
        ):
            value = getattr(self, key)
            if value and value not in names:
                found.append(f"unknown {key} {quote(value)} (expected one of {', '.join(names)})")
        for key in ("seed_size", "batch_size"):
            amount = getattr(self, key)
            if amount is not None:
                found.extend(amount.problems(key))
        stop = self.stopping
        if stop.label_budget is not None:
            found.extend(stop.label_budget.problems("stopping.label_budget"))
        if not 0 <= stop.max_rounds <= MAX_ROUNDS:
            found.append(f"stopping.max_rounds must be in [0, {MAX_ROUNDS}], got {stop.max_rounds}")
        for key in ("target_accuracy", "stable_agreement"):
            value = getattr(stop, key)
            if not math.isfinite(value):
                found.append(f"stopping.{key} must be finite, got {value}")
            elif not 0 <= value <= 1:
                found.append(f"stopping.{key} must be in [0, 1], got {value}")
        if not 0 <= self.random_seed <= MAX_SEED:
            found.append(f"random_seed must be in [0, {MAX_SEED}], got {self.random_seed}")
        if self.candidates < 0:
            found.append(
                f"candidates must not be negative, got {self.candidates} "
                "(the unlabelled samples a round scores; 0 = the whole unlabelled pool)"
            )
        elif self.candidates > MAX_CANDIDATES:
            found.append(f"candidates must be at most {MAX_CANDIDATES}, got {self.candidates}")
        if not 0 <= self.refill_every <= MAX_REFILL_EVERY:
            found.append(
                f"refill_every must be in [1, {MAX_REFILL_EVERY}] (0 = {DEFAULT_REFILL_EVERY}), got {self.refill_every}"
            )
        if not (math.isfinite(self.annotator_seconds) and 0 <= self.annotator_seconds <= MAX_ANNOTATOR_SECONDS):
            found.append(f"annotator_seconds must be in [0, {MAX_ANNOTATOR_SECONDS}], got {self.annotator_seconds}")
        simulated = (self.oracle or DEFAULT_ORACLE) == "simulated"
        asynchronous = self.asynchronous if self.asynchronous is not None else not simulated
        if simulated and asynchronous and not self.annotator_seconds > 0:
            found.append(
                "annotator_seconds must be > 0 in a simulated asynchronous run (how long the simulated "
                "annotator takes per label)"
            )
        if self.annotator_seconds and not (simulated and asynchronous):
            found.append("annotator_seconds applies to simulated asynchronous runs only")
        if self.refill_every and not asynchronous:
            found.append("refill_every applies to asynchronous runs only")
        if not (math.isfinite(self.overlap) and 0 <= self.overlap <= MAX_OVERLAP):
            found.append(f"overlap must be in [0, {MAX_OVERLAP:g}], got {self.overlap}")
        elif self.overlap and (simulated or not asynchronous):
            found.append("overlap applies to asynchronous runs with the human oracle only")
        found.extend(f"hyperparameters.{p}" for p in self.hyperparameters.problems())
        return found

    def validate(self) -> RunConfig:
        """Raise InvalidArgument naming the first impossible value; return self when all are fine."""
        found = self.problems()
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise InvalidArgument(f"run config: {found[0]}{more}")
        return self

    def with_defaults(self) -> RunConfig:
        """Validated, with the documented defaults (run.proto) filled in."""
        self.validate()
        stop = (
            self.stopping
            if self.stopping.any_set
            else dataclasses.replace(self.stopping, max_rounds=DEFAULT_MAX_ROUNDS)
        )
        return dataclasses.replace(
            self,
            strategy=self.strategy or DEFAULT_STRATEGY,
            seed_strategy=self.seed_strategy or DEFAULT_SEED_STRATEGY,
            oracle=self.oracle or DEFAULT_ORACLE,
            seed_size=self.seed_size or Amount(fraction=DEFAULT_SEED_FRACTION),
            batch_size=self.batch_size or Amount(fraction=DEFAULT_BATCH_FRACTION),
            stopping=stop,
            asynchronous=self.is_asynchronous,
            refill_every=(self.refill_every or DEFAULT_REFILL_EVERY) if self.is_asynchronous else 0,
        )

    @property
    def is_asynchronous(self) -> bool:
        """Whether rounds are model versions (``asynchronous``, by default for the human oracle)."""
        if self.asynchronous is not None:
            return self.asynchronous
        return (self.oracle or DEFAULT_ORACLE) == "human"

    def in_overlap(self, sample_id: int) -> bool:
        """Whether two people label this text (the ``overlap`` share): a hash of the run's seed and
        the sample id, uniform in [0, 1), below ``overlap``; the same in every process and restart."""
        if self.overlap <= 0:
            return False
        digest = hashlib.blake2b(f"{self.random_seed}:{int(sample_id)}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < self.overlap

    @property
    def queue_size(self) -> int:
        """Asynchronous runs: texts kept ready to label (two refills' worth)."""
        return 2 * (self.refill_every or DEFAULT_REFILL_EVERY)


@dataclasses.dataclass(frozen=True)
class Run:
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
class Round:
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
    #: The round's model against the model the run kept before it, on the same held-out labels.
    comparison: Comparison | None = None


def kept_round(rounds: Sequence[Round]) -> Round | None:
    """The round whose model the run keeps, by held-out labels, never test (``common.best``)."""
    return pick_kept(
        [r for r in rounds if r.checkpoint_id],
        order=lambda r: (r.index,),
        comparison=lambda r: r.comparison,
        validation=lambda r: (
            (r.validation.accuracy, r.validation.count) if r.validation and r.validation.count else None
        ),
    )


@dataclasses.dataclass(frozen=True)
class Acquisition:
    sample_id: int
    round: int
    strategy: str = ""
    score: float = 0.0
    label: str = ""
    text: str = ""
    #: Each person's latest label of it in the run's scope, by annotator (named annotators only).
    opinions: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)


@dataclasses.dataclass(frozen=True)
class LabelResult:
    recorded: int = 0
    unchanged: int = 0
    changed: int = 0
    labels: tuple[tuple[int, str], ...] = ()
    #: Of ``recorded``, the labels kept beside another person's label in force (second opinions).
    second_opinions: int = 0


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
class StepProgress:
    """How far a running step is, at what measured speed (lesslabels.v1.StepProgress)."""

    #: What is counted: "steps" (training) or "texts" (scoring, embedding).
    unit: str
    done: int
    total: int
    #: Units per second, measured (0 until measured).
    per_second: float = 0.0
    #: Training: samples per second, as the trainer measured them.
    samples_per_second: float = 0.0
    elapsed_seconds: float = 0.0
    #: Seconds left at the measured speed (0 = unknown yet).
    eta_seconds: float = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @classmethod
    def measured(cls, unit: str, done: int, total: int, elapsed: float, **extra: float) -> StepProgress:
        """Progress with the speed and ETA measured from ``done`` units in ``elapsed`` seconds."""
        per_second = done / elapsed if elapsed > 0 and done > 0 else 0.0
        eta = max(0, total - done) / per_second if per_second > 0 else 0.0
        return cls(unit, done, total, per_second, elapsed_seconds=elapsed, eta_seconds=eta, **extra)

    def describe(self) -> str:
        """ "step 120/400, 35.2 samples/s, 0:34 elapsed, about 1:20 left"."""
        parts = [f"{self.unit} {self.done}/{self.total}"]
        if self.samples_per_second:
            parts.append(f"{self.samples_per_second:.1f} samples/s")
        elif self.per_second:
            parts.append(f"{self.per_second:.1f} {self.unit}/s")
        parts.append(f"{_clock(self.elapsed_seconds)} elapsed")
        if self.eta_seconds:
            parts.append(f"about {_clock(self.eta_seconds)} left")
        return ", ".join(parts)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclasses.dataclass(frozen=True)
class RunEvent:
    run: Run
    round: Round | None = None
    step_progress: float = 0.0
    message: str = ""
    progress: StepProgress | None = None


@dataclasses.dataclass(frozen=True)
class TrainRequest:
    """What to train (mirrors lesslabels.v1.StartTrainingRequest)."""

    dataset: str
    run_id: int = 0
    round: int = 0
    base_model: str = ""
    hyperparameters: Hyperparameters = Hyperparameters()
    seed: int = 0
    warm_start_checkpoint: str = ""
    labels: tuple[str, ...] = ()
    request_id: str = ""
