"""The CLI's view of the services: the SDK's clients, every failure a ServiceCallError.

Arguments and results are the SDK's plain types (run configuration, runs, rounds, events,
pending batches); no protobuf here."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence

from lesslabels.cli.common import ServiceCallError, sdk_error_message, tls_of
from lesslabels.client import (
    CoordinatorClient,
    LessLabelsError,
    PendingLabels,
    PoolClient,
    Run,
    RunConfig,
    RunDetail,
    RunEvent,
    SubmittedLabels,
)
from lesslabels.client.base import ServiceClient
from lesslabels.common.config import ClientTLS


class Client:
    """The coordinator (and optionally pool) SDK clients behind methods that raise ServiceCallError."""

    def __init__(
        self,
        coordinator_address: str,
        *,
        pool_address: str = "",
        token: str = "",
        timeout: float = 30.0,
        tls: ClientTLS | None = None,
    ):
        self.coordinator_address = coordinator_address
        self.pool_address = pool_address
        self.timeout = timeout
        self.coordinator = CoordinatorClient(coordinator_address, token=token, timeout=timeout, tls=tls)
        self.pool = PoolClient(pool_address, token=token, timeout=timeout, tls=tls) if pool_address else None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Client:
        return cls(
            args.coordinator_address,
            pool_address=getattr(args, "pool_address", "") or "",
            token=args.token,
            timeout=args.timeout,
            tls=tls_of(args) if hasattr(args, "tls_ca") else None,
        )

    def close(self) -> None:
        self.coordinator.close()
        if self.pool is not None:
            self.pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _guard(client: ServiceClient, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LessLabelsError as exc:
            raise ServiceCallError(
                sdk_error_message(exc, client.service, client.address), getattr(exc, "status", None)
            ) from None

    def _pool_client(self) -> PoolClient:
        if self.pool is None:
            raise ServiceCallError("no pool address configured (--pool-address / LESSLABELS_POOL_ADDRESS)")
        return self.pool

    # ------------------------------------------------------------------ coordinator

    def _coord(self, method: str, *args, **kwargs):
        return self._guard(self.coordinator, getattr(self.coordinator, method), *args, **kwargs)

    def start_run(self, config: RunConfig, request_id: str = "") -> Run:
        return self._coord("start_run", config, request_id=request_id)

    def get_run(self, run_id: int) -> RunDetail:
        return self._coord("get_run", run_id)

    def list_runs(self, dataset: str = "", states: Sequence[str] = ()) -> list[Run]:
        return self._coord("list_runs", dataset=dataset, states=states)

    def cancel_run(self, run_id: int) -> Run:
        return self._coord("cancel", run_id)

    def resume_run(self, run_id: int) -> Run:
        return self._coord("resume", run_id)

    def pending_labels(self, run_id: int, annotator: str = "") -> PendingLabels:
        return self._guard(
            self.coordinator, self.coordinator.pending_labels, run_id, annotator=annotator, timeout=self.timeout
        )

    def submit_labels(
        self, run_id: int, labels: Sequence[tuple[int, str]], *, idempotency_key: str = "", annotator: str = ""
    ) -> SubmittedLabels:
        return self._guard(
            self.coordinator,
            self.coordinator.submit_labels,
            run_id,
            list(labels),
            idempotency_key=idempotency_key,
            annotator=annotator,
            timeout=self.timeout,
        )

    def watch_run(self, run_id: int, timeout: float = 600.0) -> Iterator[RunEvent]:
        """The run's events until it ends or ``timeout`` passes (then the caller opens a new stream)."""
        stream = self.coordinator.watch_stream(run_id, timeout=timeout)
        while True:
            event = self._guard(self.coordinator, next, stream, None)
            if event is None:
                return
            yield event

    # ------------------------------------------------------------------ pool

    def get_dataset(self, name: str):
        pool = self._pool_client()
        return self._guard(pool, pool.get_dataset, name)

    def labelled_samples(self, dataset: str, run_id: int, sample_ids: Sequence[int]):
        """The labelled samples among ``sample_ids`` in the run's scope, with who labelled them, when and how."""
        pool = self._pool_client()
        return self._guard(
            pool, pool.list_samples, dataset, run_id=run_id, state="labelled", sample_ids=list(sample_ids)
        )
