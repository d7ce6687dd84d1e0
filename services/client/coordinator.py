"""``CoordinatorClient``: start, follow, cancel and resume active-learning runs; human labelling."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence

from lesslabels.client.base import ServiceClient
from lesslabels.client.errors import DeadlineExceeded, InvalidArgument
from lesslabels.client.pool import Labels, _assignments
from lesslabels.client.types import (
    PendingLabels,
    PendingSample,
    Run,
    RunConfig,
    RunDetail,
    RunEvent,
    SubmittedLabels,
)
from lesslabels.contract import vocabulary, wire
from lesslabels.v1 import coordinator_pb2, coordinator_pb2_grpc, run_pb2

#: Deadline of one WatchRun stream; ``watch`` opens the next one until the run stops.
WATCH_WINDOW = 600.0


def _vocabulary_name(value: str, names: Sequence[str], what: str) -> str:
    """``value`` as the vocabulary's name: "" takes the coordinator's default; "least-confidence" is
    "least_confidence"; an unknown name is InvalidArgument."""
    if not value:
        return value
    name = value.replace("-", "_") if isinstance(value, str) else value
    if name not in names:
        raise InvalidArgument(f"run config: unknown {what} {value!r} (expected {', '.join(sorted(names))})")
    return name


def _config(config: RunConfig | run_pb2.RunConfig | None, fields: dict) -> run_pb2.RunConfig:
    if isinstance(config, run_pb2.RunConfig):
        if fields:
            raise InvalidArgument(f"give a RunConfig or keyword fields, not both ({', '.join(fields)})")
        return config
    try:
        if config is None:
            config = RunConfig(**fields)
        elif fields:
            config = dataclasses.replace(config, **fields)
    except TypeError as exc:
        raise InvalidArgument(f"run config: {exc}") from None
    if not isinstance(config, RunConfig):
        raise InvalidArgument(f"config must be a RunConfig, got {type(config).__name__}")
    normalized = dataclasses.replace(
        config,
        strategy=_vocabulary_name(config.strategy, vocabulary.STRATEGIES, "strategy"),
        seed_strategy=_vocabulary_name(config.seed_strategy, vocabulary.SEED_STRATEGIES, "seed strategy"),
        oracle=_vocabulary_name(config.oracle, vocabulary.ORACLES, "oracle mode"),
    )
    return wire.run_config_to_proto(normalized)


class CoordinatorClient(ServiceClient):
    """Client of the coordinator service (default port 50054).

    >>> with CoordinatorClient("localhost:50054") as coordinator:
    ...     run = coordinator.start_run(dataset="flights", strategy="entropy", stopping=StoppingRule(max_rounds=3))
    ...     for event in coordinator.watch(run.id):
    ...         print(event.run.state, event.message)
    """

    service = "coordinator"

    def __init__(self, address: str, **kwargs):
        super().__init__(address, **kwargs)
        self._stub = coordinator_pb2_grpc.CoordinatorServiceStub(self._channel)

    def start_run(
        self,
        config: RunConfig | run_pb2.RunConfig | None = None,
        *,
        request_id: str = "",
        timeout: float | None = None,
        **fields,
    ) -> Run:
        """Start a run from a ``RunConfig`` (or its fields as keywords: ``dataset=``, ``strategy=``,
        ``seed_size=Amount(fraction=0.02)``, ``stopping=StoppingRule(max_rounds=5)``, ...); unset
        fields take the coordinator's defaults. With ``request_id`` a retried start returns the
        run it started instead of a second one."""
        request = coordinator_pb2.StartRunRequest(config=_config(config, fields), request_id=request_id)
        return wire.run_from_proto(self._unary(self._stub.StartRun, request, "start run", timeout))

    def get_run(self, run_id: int, *, timeout: float | None = None) -> RunDetail:
        """A run and its rounds (test metrics per round)."""
        reply = self._unary(self._stub.GetRun, run_pb2.GetRunRequest(run_id=run_id), f"run {run_id}", timeout)
        return RunDetail(
            run=wire.run_from_proto(reply.run),
            rounds=tuple(wire.round_from_proto(r) for r in reply.rounds),
            message=reply.message,
            progress=wire.step_progress_from_proto(reply.progress),
        )

    def list_runs(self, *, dataset: str = "", states: Sequence[str] = (), timeout: float | None = None) -> list[Run]:
        """Runs, optionally of one dataset and in the given states ("RUNNING", "COMPLETED", ...)."""
        request = run_pb2.ListRunsRequest(
            dataset=dataset, states=[wire.proto_value(s, wire.RUN_STATE_TO_PROTO, "run state") for s in states]
        )
        return [wire.run_from_proto(r) for r in self._unary(self._stub.ListRuns, request, "list runs", timeout).runs]

    def cancel(self, run_id: int, *, timeout: float | None = None) -> Run:
        """Stop a run (its training job too); the run ends CANCELLED."""
        reply = self._unary(
            self._stub.CancelRun, coordinator_pb2.CancelRunRequest(run_id=run_id), f"cancel run {run_id}", timeout
        )
        return wire.run_from_proto(reply)

    def resume(self, run_id: int, *, timeout: float | None = None) -> Run:
        """Continue a cancelled or failed run where it stopped (FailedPrecondition for a completed one)."""
        reply = self._unary(
            self._stub.ResumeRun, coordinator_pb2.ResumeRunRequest(run_id=run_id), f"resume run {run_id}", timeout
        )
        return wire.run_from_proto(reply)

    def watch_stream(self, run_id: int, *, timeout: float | None = WATCH_WINDOW) -> Iterator[RunEvent]:
        """One WatchRun stream: the run's current state, then its events until it stops or the
        deadline passes (DeadlineExceeded)."""
        for message in self._stream(
            self._stub.WatchRun, coordinator_pb2.WatchRunRequest(run_id=run_id), f"watch run {run_id}", timeout
        ):
            yield wire.run_event_from_proto(message)

    def watch(self, run_id: int, *, until_waiting: bool = False, window: float = WATCH_WINDOW) -> Iterator[RunEvent]:
        """The run's events until it is COMPLETED, CANCELLED or FAILED (and, with
        ``until_waiting``, until it waits for labels). Streams are reopened every ``window``
        seconds; a lost coordinator raises Unavailable."""
        stop = set(vocabulary.FINAL_RUN_STATES) | ({"WAITING_FOR_LABELS"} if until_waiting else set())
        while True:
            last = None
            try:
                for event in self.watch_stream(run_id, timeout=window):
                    last = event
                    yield event
                    if event.run.state in stop:
                        return
            except DeadlineExceeded:
                continue
            if last is None or last.run.state not in stop:
                # The server ended the stream without a final state (e.g. shutting down): check once.
                run = self.get_run(run_id).run
                if run.state in stop:
                    return
                time.sleep(0.5)

    def pending_labels(self, run_id: int, *, annotator: str = "", timeout: float | None = None) -> PendingLabels:
        """The batch a human-oracle run waits for, with the labels given so far; for an asynchronous
        run its queue, without the texts leased to other annotators (those returned are leased to
        ``annotator`` when one is named)."""
        reply = self._unary(
            self._stub.GetPendingLabels,
            coordinator_pb2.GetPendingLabelsRequest(run_id=run_id, annotator=annotator),
            f"pending labels of run {run_id}",
            timeout,
        )
        return PendingLabels(
            run_id=reply.run_id,
            round=reply.round,
            labels=tuple(reply.labels),
            remaining=reply.remaining,
            samples=tuple(
                PendingSample(sample_id=s.sample_id, text=s.text, score=s.score, label=s.label) for s in reply.samples
            ),
        )

    def submit_labels(
        self,
        run_id: int,
        labels: Labels,
        *,
        annotator: str = "",
        idempotency_key: str = "",
        timeout: float | None = None,
    ) -> SubmittedLabels:
        """Label samples of the pending batch (``{sample_id: label}``, pairs, or a DataFrame with
        ``sample_id`` and ``label`` columns); the run goes on
        once the batch is complete. Partial and repeated submissions are safe."""
        request = coordinator_pb2.SubmitRunLabelsRequest(
            run_id=run_id, labels=_assignments(labels), annotator=annotator, idempotency_key=idempotency_key
        )
        reply = self._unary(self._stub.SubmitRunLabels, request, f"labels for run {run_id}", timeout)
        return SubmittedLabels(result=wire.label_result_from_proto(reply.result), remaining=reply.remaining)
