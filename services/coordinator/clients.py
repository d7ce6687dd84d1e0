"""gRPC adapters the coordinator core talks to: pool, trainer, scorer.

Each method takes and returns domain types (``lesslabels.coordinator.model``), has a deadline, and
turns a downstream RpcError into the matching domain error. The core only sees these methods, so
tests can hand it in-memory fakes with the same names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

import grpc

from lesslabels.common.channels import DEFAULT_TIMEOUT, from_rpc_error, make_channel
from lesslabels.common import errors
from lesslabels.coordinator import convert, model
from lesslabels.v1 import (
    common_pb2,
    pool_pb2,
    pool_pb2_grpc,
    run_pb2,
    scorer_pb2,
    scorer_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

log = logging.getLogger(__name__)

#: Deadline of one ScorePool stream (a whole split on CPU).
SCORE_POOL_TIMEOUT = 3 * 3600.0
#: Deadline of one WatchJob stream; the watch is reopened (it replays the job's events) until the job ends.
WATCH_TIMEOUT = 600.0
#: How long a trainer may stay unreachable during a watch before the step fails.
TRAINER_OUTAGE_SECONDS = 120.0


def _call(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc, what) from None


class PoolClient:
    def __init__(self, address: str, *, token: str = "", timeout: float = DEFAULT_TIMEOUT):
        self.address = address
        self._channel = make_channel(address, token=token)
        self._stub = pool_pb2_grpc.PoolServiceStub(self._channel)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def get_dataset(self, name: str) -> model.DatasetInfo:
        reply = _call(f"dataset {name!r}", self._stub.GetDataset, pool_pb2.GetDatasetRequest(name=name), timeout=self._timeout)
        return model.DatasetInfo(name=reply.name, labels=tuple(reply.labels), train_count=reply.train_count,
                                 test_count=reply.test_count)

    def train_sample_ids(self, dataset: str) -> list[int]:
        """Ids of every training-pool sample, in pool order."""
        request = pool_pb2.ListSamplesRequest(dataset=dataset, split=common_pb2.SPLIT_TRAIN, page_size=5000)
        ids: list[int] = []
        try:
            for page in self._stub.ListSamples(request, timeout=self._timeout * 10):
                ids.extend(s.id for s in page.samples)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"listing samples of {dataset!r}") from None
        return ids

    def create_run(self, config: model.RunConfig, request_id: str = "") -> model.RunInfo:
        request = pool_pb2.CreateRunRequest(config=convert.run_config_to_proto(config), request_id=request_id)
        reply = _call("create run", self._stub.CreateRun, request, timeout=self._timeout)
        return convert.run_from_proto(reply)

    def get_run(self, run_id: int) -> model.RunInfo:
        reply = _call(f"run {run_id}", self._stub.GetRun, pool_pb2.GetRunRequest(run_id=run_id), timeout=self._timeout)
        return convert.run_from_proto(reply)

    def list_runs(self, dataset: str = "", states: Sequence[str] = ()) -> list[model.RunInfo]:
        request = pool_pb2.ListRunsRequest(dataset=dataset, states=[convert.STATE_TO_PROTO[s] for s in states])
        reply = _call("list runs", self._stub.ListRuns, request, timeout=self._timeout)
        return [convert.run_from_proto(r) for r in reply.runs]

    def update_run(self, run_id: int, *, state: str = "", step: str = "", round: int | None = None,
                   error: str = "", stop_reason: str = "", expected_step: str = "",
                   expected_round: int = 0) -> model.RunInfo:
        request = pool_pb2.UpdateRunRequest(
            run_id=run_id, state=convert.STATE_TO_PROTO[state] if state else run_pb2.RUN_STATE_UNSPECIFIED,
            step=convert.STEP_TO_PROTO[step] if step else run_pb2.RUN_STEP_UNSPECIFIED, round=round or 0, error=error, stop_reason=stop_reason,
            expected_step=convert.STEP_TO_PROTO[expected_step] if expected_step else run_pb2.RUN_STEP_UNSPECIFIED, expected_round=expected_round,
        )
        return convert.run_from_proto(_call(f"update run {run_id}", self._stub.UpdateRun, request, timeout=self._timeout))

    def put_round(self, info: model.RoundInfo) -> model.RoundInfo:
        _call(f"round {info.index} of run {info.run_id}", self._stub.PutRound, convert.round_to_proto(info),
              timeout=self._timeout)
        return info

    def list_rounds(self, run_id: int) -> list[model.RoundInfo]:
        reply = _call(f"rounds of run {run_id}", self._stub.ListRounds, pool_pb2.ListRoundsRequest(run_id=run_id),
                      timeout=self._timeout)
        return [convert.round_from_proto(r) for r in reply.rounds]

    def add_acquisitions(self, run_id: int, round_index: int, items: Sequence[model.Acquisition]) -> tuple[int, int]:
        request = pool_pb2.AddAcquisitionsRequest(
            run_id=run_id, round=round_index, acquisitions=[convert.acquisition_to_proto(a) for a in items]
        )
        reply = _call(f"acquisitions of run {run_id}", self._stub.AddAcquisitions, request, timeout=self._timeout)
        return reply.added, reply.already_present

    def list_acquisitions(self, run_id: int, round_index: int = -1, pending_only: bool = False) -> list[model.Acquisition]:
        request = pool_pb2.ListAcquisitionsRequest(run_id=run_id, round=round_index, pending_only=pending_only)
        reply = _call(f"acquisitions of run {run_id}", self._stub.ListAcquisitions, request, timeout=self._timeout)
        return [convert.acquisition_from_proto(a) for a in reply.acquisitions]

    def reveal_labels(self, run_id: int, sample_ids: Sequence[int], source: str) -> model.LabelResult:
        request = pool_pb2.RevealLabelsRequest(run_id=run_id, sample_ids=list(sample_ids),
                                               source=convert.SOURCE_TO_PROTO[source])
        reply = _call(f"reveal labels for run {run_id}", self._stub.RevealLabels, request, timeout=self._timeout)
        return convert.label_result_from_proto(reply)

    def submit_labels(self, dataset: str, run_id: int, labels: Sequence[tuple[int, str]], *, annotator: str = "",
                      idempotency_key: str = "") -> model.LabelResult:
        request = pool_pb2.SubmitLabelsRequest(
            dataset=dataset, run_id=run_id, labels=[pool_pb2.LabelAssignment(sample_id=i, label=label) for i, label in labels],
            source=common_pb2.LABEL_SOURCE_HUMAN, annotator=annotator, idempotency_key=idempotency_key,
        )
        reply = _call(f"labels for run {run_id}", self._stub.SubmitLabels, request, timeout=self._timeout)
        return convert.label_result_from_proto(reply)


class TrainerClient:
    def __init__(self, address: str, *, token: str = "", timeout: float = DEFAULT_TIMEOUT):
        self.address = address
        self._channel = make_channel(address, token=token)
        self._stub = trainer_pb2_grpc.TrainerServiceStub(self._channel)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def start_training(self, request: model.TrainRequest) -> model.JobInfo:
        reply = _call(f"start training for run {request.run_id} round {request.round}", self._stub.StartTraining,
                      convert.train_request_to_proto(request), timeout=self._timeout)
        return convert.job_from_proto(reply)

    def get_job(self, job_id: str) -> model.JobInfo:
        reply = _call(f"job {job_id}", self._stub.GetJob, trainer_pb2.GetJobRequest(job_id=job_id), timeout=self._timeout)
        return convert.job_from_proto(reply)

    def cancel_job(self, job_id: str) -> model.JobInfo:
        reply = _call(f"cancel job {job_id}", self._stub.CancelJob, trainer_pb2.CancelJobRequest(job_id=job_id),
                      timeout=self._timeout)
        return convert.job_from_proto(reply)

    def wait_job(self, job_id: str, progress: Callable[[model.TrainProgress], None] | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> model.JobInfo:
        """Follow ``job_id`` until it ends and return it. Reopens the stream on its deadline and
        rides out a trainer restart for up to ``TRAINER_OUTAGE_SECONDS``; raises NotFound when the
        trainer no longer knows the job (the caller starts it again)."""
        outage_since: float | None = None
        while True:
            if should_stop():
                return self.get_job(job_id)
            call = self._stub.WatchJob(trainer_pb2.WatchJobRequest(job_id=job_id), timeout=WATCH_TIMEOUT)
            try:
                for event in call:
                    outage_since = None
                    if should_stop():
                        call.cancel()
                        break
                    if progress is not None:
                        progress(convert.progress_from_proto(event))
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    raise errors.NotFound(f"trainer lost job {job_id}: {exc.details()}") from None
                if code == grpc.StatusCode.UNAVAILABLE:
                    outage_since = outage_since or time.monotonic()
                    if time.monotonic() - outage_since > TRAINER_OUTAGE_SECONDS:
                        raise errors.Unavailable(f"trainer at {self.address} unreachable while watching {job_id}") from None
                    time.sleep(1.0)
                    continue
                if code not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                    raise from_rpc_error(exc, f"watching job {job_id}") from None
            try:
                job = self.get_job(job_id)
            except errors.Unavailable:
                outage_since = outage_since or time.monotonic()
                if time.monotonic() - outage_since > TRAINER_OUTAGE_SECONDS:
                    raise
                time.sleep(1.0)
                continue
            if job.state in model.JOB_FINAL_STATES or should_stop():
                return job


class ScorerClient:
    def __init__(self, address: str, *, token: str = "", timeout: float = SCORE_POOL_TIMEOUT):
        self.address = address
        self._channel = make_channel(address, token=token)
        self._stub = scorer_pb2_grpc.ScorerServiceStub(self._channel)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def score_pool(self, *, dataset: str, run_id: int = 0, checkpoint_id: str = "", base_model: str | None = None,
                   split: str = "train", include_all: bool = False, embeddings: bool = False,
                   probabilities: bool = True, chunk_size: int = 512,
                   progress: Callable[[int, int], None] | None = None) -> model.PoolScores:
        ref = common_pb2.ModelRef(base_model=base_model) if base_model is not None else common_pb2.ModelRef(
            checkpoint_id=checkpoint_id)
        request = scorer_pb2.ScorePoolRequest(
            model=ref, dataset=dataset, run_id=run_id, chunk_size=chunk_size, include_embeddings=embeddings,
            omit_probabilities=not probabilities, split=convert.SPLIT_TO_PROTO[split], include_all=include_all,
        )

        def chunks(stream: Iterable):
            for chunk in stream:
                if progress is not None:
                    progress(chunk.done, chunk.total)
                yield chunk

        try:
            return convert.pool_scores_from_chunks(
                chunks(self._stub.ScorePool(request, timeout=self._timeout)), probabilities=probabilities,
                embeddings=embeddings,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"scoring the {split} split of {dataset!r}") from None
