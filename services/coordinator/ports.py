"""The coordinator's dependencies, as typed ports: what the orchestrator calls on the pool, the run
store, the trainer and the scorer. ``clients``, the SDK and the run store's one client
(``lesslabels.pool.run_store_client.RunStoreClient``, which only ``main`` imports) implement them
over gRPC; tests hand in fakes, which the type checker holds to the same signatures."""

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
    the run store (``RunStorePort``)."""

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
        second_opinion: bool = False,
    ) -> contract.LabelResult:
        """Record a person's labels; ``second_opinion``: beside another person's label, never replacing it."""
        ...


class RunStorePort(Protocol):
    """A run's record, rounds and acquisitions: the pool process's internal run store, which only
    the coordinator writes (``lesslabels.pool.run_store_client.RunStoreClient`` in production)."""

    def create_run(self, config: contract.RunConfig, request_id: str = "") -> contract.Run:
        """A new PENDING run; with a ``request_id`` seen before, the run created with it."""
        ...

    def get_run(self, run_id: int) -> contract.Run: ...

    def list_runs(self, dataset: str = "", states: Sequence[str] = ()) -> list[contract.Run]: ...

    def update_run(self, run_id: int, *, state: str = "", error: str = "", stop_reason: str = "") -> contract.Run: ...

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
    ) -> contract.Run:
        """Store a step's outcome and advance the run in one transaction, only if it is still at
        ``expected_step``/``expected_round`` (else FailedPrecondition and nothing is written)."""
        ...

    def put_round(self, info: contract.Round) -> contract.Round: ...

    def list_rounds(self, run_id: int) -> list[contract.Round]: ...

    def list_acquisitions(
        self, run_id: int, round_index: int = -1, pending_only: bool = False
    ) -> list[contract.Acquisition]:
        """The samples the run acquired (``round_index`` -1: in every round), oldest first."""
        ...

    def reveal_labels(self, run_id: int, sample_ids: Sequence[int], source: str = "oracle") -> contract.LabelResult:
        """The simulated oracle: record the gold labels of ``sample_ids`` as the run's labels."""
        ...


class TrainerPort(Protocol):
    """Training jobs (the trainer service)."""

    def start_training(self, request: contract.TrainRequest) -> domain.JobInfo: ...

    def check_base_model(self, base_model: str, max_length: int = 0) -> str:
        """The name a caller may be shown for ``base_model``; InvalidArgument when the trainer may not
        train from it (outside its allowed places, not loadable, fewer than ``max_length`` positions)."""
        ...

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

    def embed_pool(
        self, dataset: str, *, base_model: str = "", shard: contract.Shard | None = None
    ) -> contract.EmbedProgress:
        """Have the scorer compute and keep the fast head's embeddings of ``dataset``'s training
        samples (or one shard) ahead of its first use."""
        ...
