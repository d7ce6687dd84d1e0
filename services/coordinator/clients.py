"""The services the coordinator core talks to: pool, trainer, scorer.

Pool and scorer are thin adapters over the client SDK (``lesslabels.client``): the SDK owns the
channel, deadlines, retries and error mapping, and these classes keep the method names and
domain types (``lesslabels.contract``, ``coordinator.domain``) the core was written against, so tests can hand
the core in-memory fakes with the same names. The trainer has no public SDK client; its adapter
builds on the SDK's ``ServiceClient`` for the same channel and errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

from lesslabels import client
from lesslabels.client._base import ServiceClient
from lesslabels.common import errors
from lesslabels.common.channels import DEFAULT_TIMEOUT
from lesslabels.common.config import ClientTLS
from lesslabels.common.shards import Shard
from lesslabels import contract
from lesslabels.contract import vocabulary, wire
from lesslabels.coordinator import convert, domain
from lesslabels.v1 import trainer_pb2, trainer_pb2_grpc

log = logging.getLogger(__name__)

#: Deadline of one ScorePool stream (a whole split on CPU).
SCORE_POOL_TIMEOUT = 3 * 3600.0
#: Deadline of one WatchJob stream; the watch is reopened (it replays the job's events) until the job ends.
WATCH_TIMEOUT = 600.0
#: How long a trainer may stay unreachable during a watch before the step fails.
TRAINER_OUTAGE_SECONDS = 120.0


class PoolClient:
    """The pool as the coordinator core sees it (an adapter over ``lesslabels.client.PoolClient``)."""

    def __init__(
        self, address: str, *, token: str = "", timeout: float = DEFAULT_TIMEOUT, tls: ClientTLS | None = None
    ):
        self.address = address
        self._timeout = timeout
        self._pool = client.PoolClient(address, token=token, timeout=timeout, tls=tls)

    def close(self) -> None:
        self._pool.close()

    def get_dataset(self, name: str) -> domain.DatasetInfo:
        reply = self._pool.get_dataset(name)
        return domain.DatasetInfo(
            name=reply.name, labels=reply.labels, train_count=reply.train_count, test_count=reply.test_count
        )

    def train_sample_ids(self, dataset: str, *, subset: int = 0, subset_seed: int = 0) -> list[int]:
        """Ids of every training-pool sample (or of a random subset of ``subset``), in pool order."""
        samples = self._pool.list_samples(
            dataset,
            split="train",
            page_size=5000,
            subset=subset,
            subset_seed=subset_seed,
            timeout=self._timeout * 10,
        )
        return [s.id for s in samples]

    def create_run(self, config: contract.RunConfig, request_id: str = "") -> contract.Run:
        return self._pool.create_run(config, request_id=request_id)

    def get_run(self, run_id: int) -> contract.Run:
        return self._pool.get_run(run_id)

    def list_runs(self, dataset: str = "", states: Sequence[str] = ()) -> list[contract.Run]:
        return self._pool.list_runs(dataset=dataset, states=states)

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
    ) -> contract.Run:
        return self._pool.update_run(
            run_id,
            state=state,
            step=step,
            round=round,
            error=error,
            stop_reason=stop_reason,
            expected_step=expected_step,
            expected_round=expected_round,
        )

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
        """Store a step's outcome and advance the run (compare-and-set) in one transaction."""
        return self._pool.record_step(
            run_id,
            expected_step=expected_step,
            expected_round=expected_round,
            step=step,
            round=round,
            state=state,
            stop_reason=stop_reason,
            round_info=round_info,
            acquisitions=acquisitions,
            acquisition_round=acquisition_round,
        )

    def put_round(self, info: contract.Round) -> contract.Round:
        self._pool.put_round(info)
        return info

    def list_rounds(self, run_id: int) -> list[contract.Round]:
        return self._pool.list_rounds(run_id)

    def add_acquisitions(self, run_id: int, round_index: int, items: Sequence[contract.Acquisition]) -> tuple[int, int]:
        return self._pool.add_acquisitions(run_id, round_index, items)

    def list_acquisitions(
        self, run_id: int, round_index: int = -1, pending_only: bool = False
    ) -> list[contract.Acquisition]:
        return self._pool.list_acquisitions(run_id, round_index=round_index, pending_only=pending_only)

    def reveal_labels(self, run_id: int, sample_ids: Sequence[int], source: str) -> contract.LabelResult:
        return self._pool.reveal_labels(run_id, sample_ids, source=source)

    def submit_labels(
        self,
        dataset: str,
        run_id: int,
        labels: Sequence[tuple[int, str]],
        *,
        annotator: str = "",
        idempotency_key: str = "",
    ) -> contract.LabelResult:
        return self._pool.submit_labels(
            dataset, labels, run_id=run_id, annotator=annotator, idempotency_key=idempotency_key
        )


class TrainerClient(ServiceClient):
    """The trainer as the coordinator core sees it."""

    service = "trainer"

    def __init__(
        self, address: str, *, token: str = "", timeout: float = DEFAULT_TIMEOUT, tls: ClientTLS | None = None
    ):
        super().__init__(address, token=token, timeout=timeout, tls=tls)
        self._stub = trainer_pb2_grpc.TrainerServiceStub(self._channel)

    def start_training(self, request: contract.TrainRequest) -> domain.JobInfo:
        reply = self._unary(
            self._stub.StartTraining,
            wire.train_request_to_proto(request),
            f"start training for run {request.run_id} round {request.round}",
        )
        return convert.job_from_proto(reply)

    def get_job(self, job_id: str) -> domain.JobInfo:
        return convert.job_from_proto(
            self._unary(self._stub.GetJob, trainer_pb2.GetJobRequest(job_id=job_id), f"job {job_id}")
        )

    def cancel_job(self, job_id: str) -> domain.JobInfo:
        return convert.job_from_proto(
            self._unary(self._stub.CancelJob, trainer_pb2.CancelJobRequest(job_id=job_id), f"cancel job {job_id}")
        )

    def wait_job(
        self,
        job_id: str,
        progress: Callable[[domain.TrainProgress], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> domain.JobInfo:
        """Follow ``job_id`` until it ends and return it. Reopens the stream on its deadline and
        rides out a trainer restart for up to ``TRAINER_OUTAGE_SECONDS``; raises NotFound when the
        trainer no longer knows the job (the caller starts it again)."""
        outage_since: float | None = None
        while True:
            if should_stop():
                return self.get_job(job_id)
            stream = self._stream(
                self._stub.WatchJob, trainer_pb2.WatchJobRequest(job_id=job_id), f"watching job {job_id}", WATCH_TIMEOUT
            )
            try:
                for event in stream:
                    outage_since = None
                    if should_stop():
                        break
                    if progress is not None:
                        progress(convert.progress_from_proto(event))
            except errors.NotFound as exc:
                raise errors.NotFound(f"trainer lost job {job_id}: {exc.details}") from None
            except (errors.DeadlineExceeded, errors.Cancelled):
                pass  # the stream's own deadline: look at the job, then open the next one
            except errors.Unavailable:
                outage_since = outage_since or time.monotonic()
                if time.monotonic() - outage_since > TRAINER_OUTAGE_SECONDS:
                    raise errors.Unavailable(f"trainer at {self.address} unreachable while watching {job_id}") from None
                time.sleep(1.0)
                continue
            finally:
                stream.close()  # cancels the call when we stopped early
            try:
                job = self.get_job(job_id)
            except errors.Unavailable:
                outage_since = outage_since or time.monotonic()
                if time.monotonic() - outage_since > TRAINER_OUTAGE_SECONDS:
                    raise
                time.sleep(1.0)
                continue
            if job.state in vocabulary.FINAL_JOB_STATES or should_stop():
                return job


class ScorerClient:
    """The scorer as the coordinator core sees it (an adapter over ``lesslabels.client.ScorerClient``)."""

    def __init__(
        self, address: str, *, token: str = "", timeout: float = SCORE_POOL_TIMEOUT, tls: ClientTLS | None = None
    ):
        self.address = address
        self._timeout = timeout
        self._scorer = client.ScorerClient(address, token=token, timeout=timeout, tls=tls)

    def close(self) -> None:
        self._scorer.close()

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
        progress: Callable[[int, int], None] | None = None,
    ) -> contract.PoolScores:
        # base_model "" is the scorer's default encoder (embeddings for the diverse seed set).
        return self._scorer.score_pool(
            dataset,
            checkpoint=checkpoint_id if base_model is None else None,
            base_model=base_model,
            run_id=run_id,
            split=split,
            include_all=include_all,
            embeddings=embeddings,
            probabilities=probabilities,
            subset=subset,
            subset_seed=subset_seed,
            sample_ids=sample_ids,
            shard=shard,
            chunk_size=chunk_size,
            progress=progress,
            timeout=self._timeout,
        )

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
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[contract.PoolScores]:
        return self._scorer.score_pool_chunks(
            dataset,
            checkpoint=checkpoint_id if base_model is None else None,
            base_model=base_model,
            run_id=run_id,
            split=split,
            include_all=include_all,
            embeddings=embeddings,
            probabilities=probabilities,
            subset=subset,
            subset_seed=subset_seed,
            sample_ids=sample_ids,
            shard=shard,
            chunk_size=chunk_size,
            progress=progress,
            timeout=self._timeout,
        )
