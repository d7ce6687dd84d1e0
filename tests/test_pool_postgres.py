"""The pool on a real PostgreSQL server: the same core tests, another SQLAlchemy URL."""

from __future__ import annotations

import pytest

from tests import test_pool, test_pool_dataset_labels

# Re-run a representative part of the pool suite with database_url pointing at PostgreSQL.
test_import_atis_counts_per_label = test_pool.test_import_atis_counts_per_label
test_bad_imports_name_the_row_and_store_nothing = test_pool.test_bad_imports_name_the_row_and_store_nothing
test_same_label_batch_twice_leaves_one_label_per_sample = test_pool.test_same_label_batch_twice_leaves_one_label_per_sample
test_acquisitions_never_twice_and_oracle_reveal = test_pool.test_acquisitions_never_twice_and_oracle_reveal
test_runs_rounds_and_compare_and_set = test_pool.test_runs_rounds_and_compare_and_set
test_create_run_request_id_and_resumed_runs = test_pool.test_create_run_request_id_and_resumed_runs
test_failed_import_into_new_dataset_leaves_no_dataset = test_pool.test_failed_import_into_new_dataset_leaves_no_dataset
# Labels that belong to the dataset, and deleting one dataset's rows only.
test_human_labels_belong_to_the_dataset = (
    test_pool_dataset_labels.test_human_labels_belong_to_the_dataset_and_later_human_runs_ask_nothing_again)
test_delete_dataset_removes_only_its_own_rows = test_pool_dataset_labels.test_delete_dataset_removes_only_its_own_rows


@pytest.fixture
def database_url(postgres_cluster) -> str:
    return postgres_cluster.new_database()


def test_concurrent_submissions_on_postgres(pool_address, stub):
    import threading

    from lesslabels.v1 import pool_pb2
    from tests.helpers import import_rows, pool_stub

    import_rows(pool_address, "d", [("greet", f"text {i}") for i in range(30)])
    ids = [s.id for p in stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="d"), timeout=10) for s in p.samples]
    results = []

    def worker(n):
        results.append(test_pool._submit(pool_stub(pool_address), [(i, "greet") for i in ids], key="k" if n % 2 else ""))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6
    assert sum(r.recorded for r in results) == len(ids)
    assert stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d"), timeout=5).train.labelled == len(ids)


stub = test_pool.stub


def test_upgrading_a_database_at_the_previous_head_on_postgres(postgres_cluster):
    test_pool_dataset_labels.upgrade_keeps_everything(postgres_cluster.new_database())
