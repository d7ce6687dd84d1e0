"""Small client helpers for tests: import rows into a pool over real gRPC."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from lesslabels.common.channels import make_channel
from lesslabels.v1 import common_pb2, pool_pb2, pool_pb2_grpc

SPLITS = {"train": common_pb2.SPLIT_TRAIN, "test": common_pb2.SPLIT_TEST, "dev": common_pb2.SPLIT_DEV}


def import_bytes(address: str, dataset: str, data: bytes, *, split: str = "train",
                 fmt: pool_pb2.ImportFormat = pool_pb2.IMPORT_FORMAT_AUTO, create: bool = True, chunk: int = 64 * 1024,
                 token: str = "") -> pool_pb2.ImportSummary:
    header = pool_pb2.ImportHeader(dataset=dataset, format=fmt, split=SPLITS[split], create_dataset=create)

    def messages():
        yield pool_pb2.ImportSamplesRequest(header=header)
        for start in range(0, len(data), chunk):
            yield pool_pb2.ImportSamplesRequest(data=data[start : start + chunk])

    with make_channel(address, token=token) as channel:
        return pool_pb2_grpc.PoolServiceStub(channel).ImportSamples(messages(), timeout=60)


def import_rows(address: str, dataset: str, rows: Iterable[tuple[str, str]], *, split: str = "train",
                create: bool = True) -> pool_pb2.ImportSummary:
    """Import (label, text) rows as a headered CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["label", "text"])
    writer.writerows(rows)
    return import_bytes(address, dataset, buffer.getvalue().encode(), split=split, create=create)


def pool_stub(address: str, token: str = "") -> pool_pb2_grpc.PoolServiceStub:
    return pool_pb2_grpc.PoolServiceStub(make_channel(address, token=token))
