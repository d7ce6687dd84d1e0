"""The coordinator's own views of the trainer: a training job and its progress. The values every
service shares live in ``lesslabels.contract``."""

from __future__ import annotations

import dataclasses

from lesslabels.contract import Comparison, Metrics


@dataclasses.dataclass(frozen=True)
class JobInfo:
    id: str
    state: str
    checkpoint_id: str = ""
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    validation: Metrics | None = None
    comparison: Comparison | None = None


@dataclasses.dataclass(frozen=True)
class TrainProgress:
    job_id: str
    state: str
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    message: str = ""
    samples_per_second: float = 0.0
    eta_seconds: float = 0.0
