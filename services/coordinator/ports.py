"""The coordinator's dependencies, as typed ports: what the orchestrator calls on the pool, the trainer
and the scorer. ``clients`` and the SDK implement them over gRPC; tests hand in fakes, which the
type checker holds to the same signatures. A run's state goes to the run store's one client
(``lesslabels.pool.run_store_client.RunStoreClient``)."""

from __future__ import annotations

from typing import Any, Protocol
from collections.abc import Callable, Iterator, Sequence

from lesslabels import contract
from lesslabels.client.types import Dataset, Sample
from lesslabels.coordinator import domain

#: Progress of a long call: (done, total).
Progress = Callable[[int, int], None]


class PoolPort(Protocol):
    """What the core reads and writes in the public pool service: a dataset, its training pool's
    samples, human labels. ``lesslabels.client.PoolClient`` in production; a run's own state is in
    the run store (``lesslabels.pool.run_store_client.RunStoreClient``)."""

    def get_dataset(self, name: str) -> Dataset: ...

    def list_samples(
        self, dataset: str, *, page_size: int = 2000, subset: int = 0, subset_seed: int = 0
    ) -> list[Sample]:
        """The training split's samples in pool order; ``subset`` N: only the N of a random subset
        the pool draws under ``subset_seed`` (the pool sends those N, not the whole pool)."""
        ...

    def submit_labels(
        self,
        dataset: str,
        labels: Sequence[tuple[int, str]],
        *,
        run_id: int = 0,
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
    """Scores of samples by a checkpoint or a base model (the scorer service:
    ``lesslabels.client.ScorerClient`` is one, ``ScorerReplicas`` spreads calls over several).

    ``options`` are those of ``ScorerClient.score_pool``: the model (``checkpoint=`` or
    ``base_model=``), ``embeddings``, ``probabilities``, ``chunk_size``, ``progress``."""

    def score_pool(self, samples: contract.SampleQuery, **options: Any) -> contract.PoolScores: ...

    def score_pool_chunks(self, samples: contract.SampleQuery, **options: Any) -> Iterator[contract.PoolScores]:
        """``score_pool`` one chunk at a time, as the scorer streams it."""
        ...
