"""The CLI's view of the services: every call with a deadline, every failure a ServiceCallError."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence

import grpc

from lesslabels.cli.common import ServiceCallError, rpc_error_message
from lesslabels.common.channels import make_channel
from lesslabels.v1 import (
    coordinator_pb2,
    coordinator_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    run_pb2,
)


class Client:
    """Coordinator (and optionally pool) stubs behind methods that raise ServiceCallError."""

    def __init__(self, coordinator_address: str, *, pool_address: str = "", token: str = "", timeout: float = 30.0):
        self.coordinator_address = coordinator_address
        self.pool_address = pool_address
        self.timeout = timeout
        self._channels = []
        channel = make_channel(coordinator_address, token=token)
        self._channels.append(channel)
        self._coordinator = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
        self._pool = None
        if pool_address:
            pool_channel = make_channel(pool_address, token=token)
            self._channels.append(pool_channel)
            self._pool = pool_pb2_grpc.PoolServiceStub(pool_channel)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Client:
        return cls(args.coordinator_address, pool_address=getattr(args, "pool_address", "") or "",
                   token=args.token, timeout=args.timeout)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _coord(self, method: str, request, timeout: float | None = None):
        try:
            return getattr(self._coordinator, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise ServiceCallError(rpc_error_message(exc, "coordinator", self.coordinator_address), exc.code()) from None

    def _pool_call(self, method: str, request, timeout: float | None = None):
        if self._pool is None:
            raise ServiceCallError("no pool address configured (--pool-address / LESSLABELS_POOL_ADDRESS)")
        try:
            return getattr(self._pool, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise ServiceCallError(rpc_error_message(exc, "pool", self.pool_address), exc.code()) from None

    # ------------------------------------------------------------------ coordinator

    def start_run(self, config: run_pb2.RunConfig, request_id: str = "") -> run_pb2.Run:
        return self._coord("StartRun", coordinator_pb2.StartRunRequest(config=config, request_id=request_id))

    def get_run(self, run_id: int) -> coordinator_pb2.RunDetail:
        return self._coord("GetRun", pool_pb2.GetRunRequest(run_id=run_id))

    def list_runs(self, dataset: str = "", states: Sequence[run_pb2.RunState] = ()) -> list[run_pb2.Run]:
        reply = self._coord("ListRuns", pool_pb2.ListRunsRequest(dataset=dataset, states=list(states)))
        return list(reply.runs)

    def cancel_run(self, run_id: int) -> run_pb2.Run:
        return self._coord("CancelRun", coordinator_pb2.CancelRunRequest(run_id=run_id))

    def resume_run(self, run_id: int) -> run_pb2.Run:
        return self._coord("ResumeRun", coordinator_pb2.ResumeRunRequest(run_id=run_id))

    def pending_labels(self, run_id: int) -> coordinator_pb2.PendingLabels:
        return self._coord("GetPendingLabels", coordinator_pb2.GetPendingLabelsRequest(run_id=run_id))

    def submit_labels(self, run_id: int, labels: Sequence[tuple[int, str]], *, idempotency_key: str = "",
                      annotator: str = "") -> coordinator_pb2.SubmitRunLabelsResponse:
        request = coordinator_pb2.SubmitRunLabelsRequest(
            run_id=run_id,
            labels=[pool_pb2.LabelAssignment(sample_id=sid, label=label) for sid, label in labels],
            annotator=annotator,
            idempotency_key=idempotency_key,
        )
        return self._coord("SubmitRunLabels", request)

    def watch_run(self, run_id: int, timeout: float = 600.0) -> Iterator[coordinator_pb2.RunEvent]:
        """The run's events until it ends or ``timeout`` passes (then the caller opens a new stream)."""
        try:
            yield from self._coordinator.WatchRun(coordinator_pb2.WatchRunRequest(run_id=run_id), timeout=timeout)
        except grpc.RpcError as exc:
            raise ServiceCallError(rpc_error_message(exc, "coordinator", self.coordinator_address), exc.code()) from None

    # ------------------------------------------------------------------ pool

    def get_dataset(self, name: str) -> pool_pb2.Dataset:
        return self._pool_call("GetDataset", pool_pb2.GetDatasetRequest(name=name))
