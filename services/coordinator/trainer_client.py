"""The trainer as the coordinator core sees it.

The pool and the scorer need no adapter: the core uses the SDK's clients (``lesslabels.client``
``PoolClient`` and ``ScorerClient``), and a run's state goes to the run store's one client
(``lesslabels.pool.run_store_client.RunStoreClient``). The trainer has no public SDK client; its
adapter builds on the SDK's ``lesslabels.client.base.ServiceClient`` for the same channel,
deadlines, retries and errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lesslabels.client.base import ServiceClient
from lesslabels.common import errors
from lesslabels.common.channels import DEFAULT_TIMEOUT
from lesslabels.common.config import ClientTLS
from lesslabels import contract
from lesslabels.contract import vocabulary, wire
from lesslabels.coordinator import convert, domain
from lesslabels.v1 import trainer_pb2, trainer_pb2_grpc

log = logging.getLogger(__name__)

#: Deadline of one WatchJob stream; the watch is reopened (it replays the job's events) until the job ends.
WATCH_TIMEOUT = 600.0
#: How long a trainer may stay unreachable during a watch before the step fails.
TRAINER_OUTAGE_SECONDS = 120.0


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

    def check_base_model(self, base_model: str, max_length: int = 0) -> str:
        reply = self._unary(
            self._stub.CheckBaseModel,
            trainer_pb2.CheckBaseModelRequest(base_model=base_model, max_length=max_length),
            f"checking base model {errors.quote(base_model)}",
        )
        return reply.name

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
