"""Training jobs as data: states, requests, events, results, and a job's JSON form. No gRPC here."""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections.abc import Callable

from lesslabels.contract import Comparison, Hyperparameters, Metrics, TrainRequest, vocabulary
from lesslabels.trainer.loop import Progress


class JobState(enum.Enum):
    """The vocabulary's job states (``contract.vocabulary.JOB_STATES``; a test keeps them equal)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    INTERRUPTED = "INTERRUPTED"

    @property
    def done(self) -> bool:
        return self.value in vocabulary.FINAL_JOB_STATES


def request_to_dict(request: TrainRequest) -> dict:
    """A request as a job file stores it."""
    return dataclasses.asdict(request)


def request_from_dict(data: dict) -> TrainRequest:
    """A request from a job file (older job files call the settings "config")."""
    data = dict(data)
    settings = data.pop("hyperparameters", None) or data.pop("config", None) or {}
    data["hyperparameters"] = Hyperparameters(**settings)
    data["labels"] = tuple(data.get("labels", ()))
    return TrainRequest(**data)


@dataclasses.dataclass(frozen=True)
class JobEvent:
    """One entry of a job's event stream (mirrors lesslabels.v1.TrainProgress)."""

    job_id: str
    state: JobState
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float = 0.0
    validation: Metrics | None = None
    samples_per_second: float = 0.0
    eta_seconds: float = 0.0
    message: str = ""
    checkpoint_id: str = ""
    queue_position: int = 0


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a successful runner returns."""

    checkpoint_id: str
    validation: Metrics | None
    message: str = ""
    comparison: Comparison | None = None


@dataclasses.dataclass
class Job:
    id: str
    request: TrainRequest
    state: JobState = JobState.QUEUED
    created_at: str = ""
    started_at: str = ""
    finished_at: str = ""
    checkpoint_id: str = ""
    error: str = ""
    validation: Metrics | None = None
    device: str = ""
    queue_position: int = 0
    comparison: Comparison | None = None
    events: list[JobEvent] = dataclasses.field(default_factory=list, repr=False)
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    def snapshot(self) -> Job:
        """A copy safe to hand out (the live job keeps changing)."""
        return dataclasses.replace(self, events=[])

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "request": request_to_dict(self.request),
            "state": self.state.value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "checkpoint_id": self.checkpoint_id,
            "error": self.error,
            "validation": self.validation.as_dict() if self.validation else None,
            "device": self.device,
            "comparison": self.comparison.as_dict() if self.comparison else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        validation = data.get("validation")
        return cls(
            id=data["id"],
            request=request_from_dict(data["request"]),
            state=JobState(data["state"]),
            created_at=data.get("created_at", ""),
            started_at=data.get("started_at", ""),
            finished_at=data.get("finished_at", ""),
            checkpoint_id=data.get("checkpoint_id", ""),
            error=data.get("error", ""),
            validation=Metrics(**validation) if validation else None,
            device=data.get("device", ""),
            comparison=Comparison.from_dict(data.get("comparison")),
        )


#: runner(job, report) trains ``job`` and publishes its checkpoint; ``report`` takes training-loop
#: Progress or a message string. Raises errors.Cancelled when ``job.cancel`` is set.
Runner = Callable[[Job, Callable[["Progress | str"], None]], RunResult]
