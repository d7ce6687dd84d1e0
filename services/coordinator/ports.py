"""The coordinator's dependencies, as typed ports: what the engine calls on the pool, the trainer
and the scorer. ``clients`` implements them over gRPC; tests hand in fakes, which the type checker
holds to the same signatures."""

from __future__ import annotations

from typing import Protocol
from collections.abc import Callable, Iterator, Sequence

from lesslabels.common.shards import Shard
from lesslabels import contract
from lesslabels.coordinator import domain

#: Progress of a long call: (done, total).
Progress = Callable[[int, int], None]


class PoolPort(Protocol):
    """Datasets, runs, rounds, acquisitions and labels (the pool service)."""

    def get_dataset(self, name: str) -> domain.DatasetInfo: ...

    def train_sample_ids(self, dataset: str, *, subset: int = 0, subset_seed: int = 0) -> list[int]:
        """Ids of the training pool's samples in pool order; ``subset`` N: only the N of a random
        subset the pool draws under ``subset_seed`` (the pool sends those N, not the whole pool)."""
        ...

    def create_run(self, config: contract.RunConfig, request_id: str = "") -> contract.Run: ...

    def get_run(self, run_id: int) -> contract.Run: ...

    def list_runs(self, dataset: str = "", states: Sequence[str] = ()) -> list[contract.Run]: ...

    def update_run(
        self,
        run_id: int,
        *,
        state: str = "",
        step: str = "",
        round: int | None = None,
        error: str = "",
        stop_reason: str = "",
        expected_step: str = "",
        expected_round: int = 0,
    ) -> contract.Run: ...

    def record_step(
        self,
        run_id: int,
        *,
        expected_step: str,
        expected_round: int,
        step: str = "",
        round: int | None = None,
        state: str = "",
        stop_reason: str = "",
        round_info: contract.Round | None = None,
        acquisitions: Sequence[contract.Acquisition] = (),
        acquisition_round: int = 0,
    ) -> contract.Run: ...

    def put_round(self, info: contract.Round) -> contract.Round: ...

    def list_rounds(self, run_id: int) -> list[contract.Round]: ...

    def list_acquisitions(
        self, run_id: int, round_index: int = -1, pending_only: bool = False
    ) -> list[contract.Acquisition]: ...

    def reveal_labels(self, run_id: int, sample_ids: Sequence[int], source: str) -> contract.LabelResult: ...

    def submit_labels(
        self,
        dataset: str,
        run_id: int,
        labels: Sequence[tuple[int, str]],
        *,
        annotator: str = "",
        idempotency_key: str = "",
    ) -> contract.LabelResult: ...


class TrainerPort(Protocol):
    """Training jobs (the trainer service)."""

    def start_training(self, request: contract.TrainRequest) -> domain.JobInfo: ...

    def cancel_job(self, job_id: str) -> domain.JobInfo: ...

    def wait_job(
        self,
        job_id: str,
        progress: Callable[[domain.TrainProgress], None] | None = None,
        should_stop: Callable[[], bool] = ...,
    ) -> domain.JobInfo: ...


class ScorerPort(Protocol):
    """Scores of a split by a checkpoint or a base model (the scorer service).

    By default the samples unlabelled in the scope of ``run_id``; ``include_all`` for every sample
    of the split; ``subset=N``: a random subset of N of them that the pool draws under
    ``subset_seed``; ``sample_ids``: only those samples; ``shard``: only that shard of them
    (``lesslabels.common.shards``), for one of several scorer replicas."""

    def score_pool(
        self,
        *,
        dataset: str,
        run_id: int = 0,
        checkpoint_id: str = "",
        base_model: str | None = None,
        split: str = "train",
        include_all: bool = False,
        embeddings: bool = False,
        probabilities: bool = True,
        subset: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        chunk_size: int = 512,
        progress: Progress | None = None,
    ) -> contract.PoolScores: ...

    def iter_pool_scores(
        self,
        *,
        dataset: str,
        run_id: int = 0,
        checkpoint_id: str = "",
        base_model: str | None = None,
        split: str = "train",
        include_all: bool = False,
        embeddings: bool = False,
        probabilities: bool = True,
        subset: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        chunk_size: int = 512,
        progress: Progress | None = None,
    ) -> Iterator[contract.PoolScores]:
        """``score_pool`` one chunk at a time, as the scorer streams it."""
        ...
