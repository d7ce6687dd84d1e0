"""What the trainer reads from the pool, over gRPC, as domain objects. Deadlines on every call.

Only the run's acquired labels of the train split are read for training; gold labels are only
asked for the dev split (validation). The test split is never read.
"""

from __future__ import annotations

import dataclasses
import logging

import grpc

from lesslabels.common.channels import DEFAULT_TIMEOUT, from_rpc_error, make_channel
from lesslabels.v1 import common_pb2, pool_pb2, pool_pb2_grpc
from lesslabels.trainer.engine import Example

log = logging.getLogger(__name__)

#: Deadline of a whole ListSamples stream (large labelled sets come in many pages).
LIST_TIMEOUT = 300.0
PAGE_SIZE = 2000


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    labels: tuple[str, ...]
    train_count: int
    dev_count: int


@dataclasses.dataclass(frozen=True)
class RunInfo:
    id: int
    dataset: str


class PoolClient:
    def __init__(self, address: str, *, token: str = "", timeout: float = DEFAULT_TIMEOUT):
        self.address = address
        self._channel = make_channel(address, token=token)
        self._stub = pool_pb2_grpc.PoolServiceStub(self._channel)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def dataset(self, name: str) -> DatasetInfo:
        try:
            reply = self._stub.GetDataset(pool_pb2.GetDatasetRequest(name=name), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"pool GetDataset {name!r}") from None
        return DatasetInfo(name=reply.name, labels=tuple(reply.labels), train_count=reply.train_count,
                           dev_count=reply.dev_count)

    def run(self, run_id: int) -> RunInfo:
        try:
            reply = self._stub.GetRun(pool_pb2.GetRunRequest(run_id=run_id), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"pool GetRun {run_id}") from None
        return RunInfo(id=reply.id, dataset=reply.config.dataset)

    def labelled_counts(self, dataset: str, run_id: int) -> dict[str, int]:
        """Acquired labels per label in the train split, in the scope of ``run_id``."""
        try:
            reply = self._stub.GetCounts(pool_pb2.GetCountsRequest(dataset=dataset, run_id=run_id),
                                         timeout=self._timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"pool GetCounts {dataset!r} run {run_id}") from None
        return {label: int(n) for label, n in reply.train.labelled_by_label.items() if n}

    def labelled_examples(self, dataset: str, run_id: int) -> list[Example]:
        """The train-split samples labelled in the scope of ``run_id``, with those labels."""
        request = pool_pb2.ListSamplesRequest(dataset=dataset, split=common_pb2.SPLIT_TRAIN,
                                              state=pool_pb2.LABEL_STATE_LABELLED, run_id=run_id,
                                              page_size=PAGE_SIZE)
        return [Example(s.id, s.text, s.label) for s in self._list(request) if s.label]

    def dev_examples(self, dataset: str) -> list[Example]:
        """The dev split with its gold labels (samples without one are skipped)."""
        request = pool_pb2.ListSamplesRequest(dataset=dataset, split=common_pb2.SPLIT_DEV, include_gold=True,
                                              page_size=PAGE_SIZE)
        return [Example(s.id, s.text, s.gold_label) for s in self._list(request) if s.gold_label]

    def _list(self, request: pool_pb2.ListSamplesRequest) -> list[common_pb2.Sample]:
        try:
            return [s for page in self._stub.ListSamples(request, timeout=LIST_TIMEOUT) for s in page.samples]
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"pool ListSamples {request.dataset!r}") from None
