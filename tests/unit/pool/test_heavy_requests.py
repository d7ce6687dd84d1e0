"""Work bounded by bytes in the pool: pages of samples sized under the message limit,
and a limit on concurrent imports."""

from __future__ import annotations

import json
import threading

import grpc
import pytest

from lesslabels.common.channels import make_channel
from lesslabels.pool.main import build_server
from lesslabels.v1 import pool_pb2, pool_pb2_grpc
from tests.helpers import import_bytes, server_settings_for_tests

MiB = 1024 * 1024


@pytest.fixture
def small_pool(tmp_path):
    """A pool whose messages may hold 1 MiB at most, taking one import at a time."""
    server = build_server(
        server_settings_for_tests(max_message_bytes=MiB), f"sqlite:///{tmp_path / 'pool.db'}", max_concurrent_imports=1
    )
    server.start()
    server.set_serving()
    yield f"127.0.0.1:{server.port}"
    server.stop(0)


def _jsonl(n: int, size: int) -> bytes:
    return b"".join(
        json.dumps({"text": f"{i} " + "x" * size, "label": "a" if i % 2 else "b"}).encode() + b"\n" for i in range(n)
    )


def test_pages_of_long_texts_stay_under_the_message_limit(small_pool):
    """40 texts of 100 kB (4 MB; just under the 100,000-character limit) in one page of rows would be
    "larger than max" at a 1 MiB limit."""
    import_bytes(small_pool, "long", _jsonl(40, 99_990), fmt=pool_pb2.IMPORT_FORMAT_JSONL, chunk=256 * 1024)
    with make_channel(small_pool) as channel:
        stub = pool_pb2_grpc.PoolServiceStub(channel)
        pages = list(stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="long", page_size=500), timeout=30))
        assert len(pages) >= 4 and all(p.ByteSize() <= MiB // 4 + 110_000 for p in pages)
        texts = [s.text for p in pages for s in p.samples]
        assert sorted(int(t.split()[0]) for t in texts) == list(range(40))
        assert pages[0].total == 40 and pages[-1].next_page_token == ""
        # Each message's token resumes right after it.
        resumed = list(
            stub.ListSamples(
                pool_pb2.ListSamplesRequest(dataset="long", page_size=500, page_token=pages[0].next_page_token),
                timeout=30,
            )
        )
        assert [s.id for p in resumed for s in p.samples] == [s.id for p in pages[1:] for s in p.samples]


def test_imports_past_the_concurrency_limit_are_resource_exhausted(small_pool):
    release = threading.Event()
    header = pool_pb2.ImportHeader(dataset="slow", format=pool_pb2.IMPORT_FORMAT_JSONL, create_dataset=True)
    results: list = []

    def slow_messages():
        yield pool_pb2.ImportSamplesRequest(header=header)
        release.wait(30)
        yield pool_pb2.ImportSamplesRequest(data=_jsonl(4, 10))

    with make_channel(small_pool) as channel:
        stub = pool_pb2_grpc.PoolServiceStub(channel)
        first = threading.Thread(target=lambda: results.append(stub.ImportSamples(slow_messages(), timeout=30)))
        first.start()
        try:
            threading.Event().wait(1.0)  # the first import's handler holds the one slot by now
            with pytest.raises(grpc.RpcError) as caught:
                import_bytes(small_pool, "other", _jsonl(2, 10), fmt=pool_pb2.IMPORT_FORMAT_JSONL)
            refused = caught.value
            assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "1 imports are in progress" in refused.details()
        finally:
            release.set()
            first.join(30)
        assert results and results[0].imported == 4
        # The slot is free again.
        assert import_bytes(small_pool, "third", _jsonl(2, 10), fmt=pool_pb2.IMPORT_FORMAT_JSONL).imported == 2
