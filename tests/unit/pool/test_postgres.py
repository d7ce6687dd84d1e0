"""The pool on a real PostgreSQL server, where it differs from SQLite: concurrent writers. (The core
pool tests marked ``BOTH_DATABASES`` in test_pool.py and the RecordStep tests run on PostgreSQL too.)"""

from __future__ import annotations

import pytest

from tests.helpers import import_rows, pool_stub, submit_labels


@pytest.mark.parametrize("database_backend", ["postgres"], indirect=True)
def test_concurrent_submissions_on_postgres(pool_address, stub):
    import threading

    from lesslabels.v1 import pool_pb2

    import_rows(pool_address, "d", [("greet", f"text {i}") for i in range(30)])
    ids = [s.id for p in stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="d"), timeout=10) for s in p.samples]
    results = []

    def worker(n):
        results.append(submit_labels(pool_stub(pool_address), [(i, "greet") for i in ids], key="k" if n % 2 else ""))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6
    assert sum(r.recorded for r in results) == len(ids)
    assert stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d"), timeout=5).train.labelled == len(ids)
