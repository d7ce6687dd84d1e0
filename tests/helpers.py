"""Small helpers for tests: server settings, importing rows into a pool and labelling over real gRPC,
running a test on both pool databases, loading a benchmark script."""

from __future__ import annotations

import importlib.util
import pathlib
import socket
import types
from typing import Any
from collections.abc import Iterable

import pytest

from lesslabels.client import ImportSummary, PoolClient
from lesslabels.contract import wire
from lesslabels.common.channels import make_channel
from lesslabels.common.config import ServerSettings
from lesslabels.v1 import common_pb2, pool_pb2, pool_pb2_grpc, run_store_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPLITS = wire.SPLIT_TO_PROTO
#: Run a test on SQLite and on PostgreSQL (skipped where PostgreSQL is not installed).
BOTH_DATABASES = pytest.mark.parametrize("database_backend", ["sqlite", "postgres"], indirect=True)


#: Training texts of the dataset of the ``labelled_pool`` fixture (conftest.py).
LABELLED_POOL_TRAIN = 300
#: Training texts of the dataset "big" of the ``big`` fixture (conftest.py).
BIG_TRAIN = 300


def load_bench(script: str) -> types.ModuleType:
    """``bench/<script>`` as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{pathlib.Path(script).stem}", ROOT / "bench" / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_settings_for_tests(**overrides) -> ServerSettings:
    base: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "grace_seconds": 1.0, "workers": 8}
    base.update(overrides)
    return ServerSettings(**base)


def import_bytes(
    address: str,
    dataset: str,
    data: bytes,
    *,
    split: str = "train",
    fmt: pool_pb2.ImportFormat = pool_pb2.IMPORT_FORMAT_AUTO,
    create: bool = True,
    chunk: int = 64 * 1024,
    token: str = "",
    **header_fields: Any,
) -> pool_pb2.ImportSummary:
    """Import ``data`` with the raw stub; ``header_fields`` are more ImportHeader fields (text_column...)."""
    header = pool_pb2.ImportHeader(
        dataset=dataset, format=fmt, split=SPLITS[split], create_dataset=create, **header_fields
    )

    def messages():
        yield pool_pb2.ImportSamplesRequest(header=header)
        for start in range(0, len(data), chunk):
            yield pool_pb2.ImportSamplesRequest(data=data[start : start + chunk])

    with make_channel(address, token=token) as channel:
        return pool_pb2_grpc.PoolServiceStub(channel).ImportSamples(messages(), timeout=60)


def import_rows(
    address: str,
    dataset: str,
    rows: Iterable[tuple[str, str]],
    *,
    split: str = "train",
    create: bool = True,
    token: str = "",
) -> ImportSummary:
    """Import (label, text) rows with the SDK's PoolClient."""
    with PoolClient(address, token=token, timeout=60) as pool:
        return pool.import_samples(dataset, ((text, label) for label, text in rows), split=split, create=create)


class PoolProcessStub:
    """The stubs of the pool process's two services on one channel: ``pool`` (PoolService, public)
    and ``runs`` (RunStore, internal); a method by name goes to the service that has it."""

    def __init__(self, channel):
        self.pool = pool_pb2_grpc.PoolServiceStub(channel)
        self.runs = run_store_pb2_grpc.RunStoreStub(channel)

    def __getattr__(self, name: str):
        return getattr(self.pool if hasattr(self.pool, name) else self.runs, name)


def pool_stub(address: str, token: str = "") -> Any:
    """``PoolProcessStub`` on ``address``: PoolService and RunStore methods alike."""
    return PoolProcessStub(make_channel(address, token=token))


def submit_labels(
    stub: Any, ids_labels, key: str = "", run_id: int = 0, dataset: str = "d"
) -> pool_pb2.SubmitLabelsResponse:
    """Human labels for ``(sample_id, label)`` pairs, with an optional idempotency key."""
    return stub.SubmitLabels(
        pool_pb2.SubmitLabelsRequest(
            dataset=dataset,
            run_id=run_id,
            idempotency_key=key,
            source=common_pb2.LABEL_SOURCE_HUMAN,
            annotator="ann",
            labels=[pool_pb2.LabelAssignment(sample_id=i, label=label) for i, label in ids_labels],
        ),
        timeout=10,
    )
