"""Prometheus metrics: a real pool server with --metrics-port, scraped over HTTP after real RPCs;
the flag's validation; the scorer batcher's metrics."""

from __future__ import annotations

import argparse
import socket
import urllib.error

import grpc
import pytest
import prometheus_client
from prometheus_client import REGISTRY

from lesslabels.common import metrics
from lesslabels.common.config import add_server_flags, server_settings
from lesslabels.pool.main import build_server
from lesslabels.scorer.batching import DynamicBatcher
from lesslabels.v1 import common_pb2, pool_pb2
from tests.helpers import free_port, import_bytes, import_rows, pool_stub, server_settings_for_tests, submit_labels
from tests.scrape import scrape, value

POOL = "lesslabels.v1.PoolService"


@pytest.fixture
def pool_with_metrics(tmp_path):
    port = free_port()
    server = build_server(server_settings_for_tests(metrics_port=port), f"sqlite:///{tmp_path / 'pool.db'}")
    grpc_port = server.start()
    server.set_serving()
    yield f"127.0.0.1:{grpc_port}", port
    server.stop(0)


def test_rpcs_move_the_scraped_counters(pool_with_metrics):
    address, port = pool_with_metrics
    import_rows(address, "d", [("a", "first text"), ("b", "second text"), ("a", "third text")])
    stub = pool_stub(address)
    before = scrape(port)

    pages = stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="d", split=common_pb2.SPLIT_TRAIN), timeout=10)
    ids = [s.id for page in pages for s in page.samples]
    submit_labels(stub, [(ids[0], "a"), (ids[1], "b")])
    with pytest.raises(grpc.RpcError) as refused:
        submit_labels(stub, [(ids[0], "a")], dataset="no-such-dataset")
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    after = scrape(port)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    submit = {"grpc_service": POOL, "grpc_method": "SubmitLabels", "grpc_type": "unary"}
    assert moved("lesslabels_grpc_server_started_total", **submit) == 2
    assert moved("lesslabels_grpc_server_handled_total", **submit, grpc_code="OK") == 1
    assert moved("lesslabels_grpc_server_handled_total", **submit, grpc_code="NOT_FOUND") == 1
    assert moved("lesslabels_grpc_server_handling_seconds_count", **submit) == 2
    stream = {"grpc_service": POOL, "grpc_method": "ListSamples", "grpc_type": "server_stream"}
    assert moved("lesslabels_grpc_server_handled_total", **stream, grpc_code="OK") == 1
    assert value(after, "lesslabels_grpc_server_in_flight", **stream) == 0
    # Two labels recorded by a person; the refused call recorded none.
    assert moved("lesslabels_pool_labels_total", source="human") == 2
    # The import (a client stream) was counted before, and the health service never is.
    assert value(before, "lesslabels_grpc_server_handled_total", grpc_service=POOL, grpc_method="ImportSamples",
                 grpc_type="client_stream", grpc_code="OK") >= 1  # fmt: skip
    assert not any(dict(labels).get("grpc_service") == "grpc.health.v1.Health" for _, labels in after)


def test_refused_token_is_counted_and_labels_stay_bounded(tmp_path):
    port = free_port()
    server = build_server(server_settings_for_tests(metrics_port=port, token="t"), f"sqlite:///{tmp_path / 'p.db'}")
    address = f"127.0.0.1:{server.start()}"
    server.set_serving()
    try:
        before = scrape(port)
        with pytest.raises(grpc.RpcError) as refused:
            pool_stub(address, token="wrong").ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # An unknown method is UNIMPLEMENTED and leaves no label of its name behind.
        channel = grpc.insecure_channel(address)
        unknown = channel.unary_unary(f"/{POOL}/NoSuchMethod" + "x" * 50)
        with pytest.raises(grpc.RpcError) as missing:
            unknown(b"", timeout=5, metadata=[("authorization", "Bearer t")])
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
        after = scrape(port)
        labels = {"grpc_service": POOL, "grpc_method": "ListDatasets", "grpc_type": "unary"}
        assert (
            value(after, "lesslabels_grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED")
            - value(before, "lesslabels_grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED")
            == 1
        )
        assert not any("NoSuchMethod" in dict(labels).get("grpc_method", "") for _, labels in after)
    finally:
        server.stop(0)
    with pytest.raises(urllib.error.URLError):  # the endpoint stops with the server
        scrape(port)


def test_metrics_port_taken_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = build_server(server_settings_for_tests(metrics_port=port), f"sqlite:///{tmp_path / 'p.db'}")
        with pytest.raises(RuntimeError, match=rf"--metrics-port {port}: cannot serve metrics on 127.0.0.1:{port}"):
            server.start()
        server.stop(0)


def parse(argv: list[str]):
    parser = argparse.ArgumentParser()
    add_server_flags(parser, 50051)
    return server_settings(parser.parse_args(argv))


def test_metrics_port_flag_defaults_off_and_takes_a_port():
    assert parse([]).metrics_port == 0
    assert parse(["--metrics-port", "9464"]).metrics_port == 9464


def test_metrics_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("LESSLABELS_METRICS_PORT", "9465")
    assert parse([]).metrics_port == 9465
    assert parse(["--metrics-port", "0"]).metrics_port == 0  # the flag wins


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics-port", "70000"], "--metrics-port 70000: must be within 0..65535"),
        (["--metrics-port", "-1"], "--metrics-port -1: must be within 0..65535"),
        (["--port", "9000", "--metrics-port", "9000"], "--metrics-port 9000 is --port as well"),
    ],
)
def test_bad_metrics_port_is_refused(argv, message):
    with pytest.raises(SystemExit, match=message):
        parse(argv)


def test_metrics_port_not_a_number_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse(["--metrics-port", "nine"])
    assert "--metrics-port: invalid int value: 'nine'" in capsys.readouterr().err


def test_metrics_port_env_not_a_number_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("LESSLABELS_METRICS_PORT", "nine")
    with pytest.raises(SystemExit):
        parse([])
    assert "LESSLABELS_METRICS_PORT='nine'" in capsys.readouterr().err


def test_batcher_reports_batches_texts_tokens_and_queue():
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    names = [
        ("lesslabels_scorer_texts_total", {}),
        ("lesslabels_scorer_batch_size_count", {}),
        ("lesslabels_scorer_batch_size_sum", {}),
        ("lesslabels_scorer_tokens_total", {"kind": "real"}),
        ("lesslabels_scorer_tokens_total", {"kind": "padded"}),
        ("lesslabels_scorer_queue_wait_seconds_count", {}),
    ]
    before = [sample(n, **labels) for n, labels in names]
    batcher = DynamicBatcher(lambda batch: [len(x) for x in batch], max_batch_size=2, max_wait_s=0.05)
    try:
        assert batcher(["aa", "bb", "cc"], timeout=10) == [2, 2, 2]
    finally:
        batcher.close()
    moved = [sample(n, **labels) - b for (n, labels), b in zip(names, before, strict=True)]
    texts, batches, batched_texts, real, padded, waits = moved
    assert texts == 3 and batched_texts == 3
    assert batches == 2  # at most 2 a batch: 2 + 1
    assert real == padded == 6  # equal lengths: no padding
    assert waits == 1  # one request
    assert sample("lesslabels_scorer_queue_texts") == 0


def test_imports_count_stored_rows_and_bytes_and_database_transactions(pool_with_metrics):
    address, port = pool_with_metrics
    data = b"label,text\na,one text\nb,another text\na,a third text\n"
    before = scrape(port)
    import_bytes(address, "counted", data)
    import_bytes(address, "counted", b"label,text\na,checked only\n", check_only=True)  # stores nothing
    with pytest.raises(grpc.RpcError) as refused:
        import_bytes(address, "counted", b"label,text\na,one text\nb,", create=False)  # a broken row: nothing stored
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(port)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("lesslabels_pool_imported_rows_total") == 3
    assert moved("lesslabels_pool_imported_bytes_total") == len(data)
    # Every import reads in a transaction first; the stored one writes one; the refused ones roll back.
    assert moved("lesslabels_pool_db_transaction_seconds_count", kind="write") >= 1
    assert moved("lesslabels_pool_db_transaction_seconds_count", kind="read") >= 1
    assert moved("lesslabels_pool_db_transaction_seconds_sum", kind="write") > 0


def test_the_state_gauge_sums_its_sources_and_forgets_dropped_ones():
    from prometheus_client import CollectorRegistry

    gauge = metrics.StateGauge("lesslabels_test_things", "things by state", ("A", "B"))
    prometheus_client.REGISTRY.unregister(gauge)
    registry = CollectorRegistry()
    registry.register(gauge)

    class Source:
        def __init__(self, counts):
            self.counts = counts

        def count(self):
            return self.counts

    one, two = Source({"A": 2, "C": 7}), Source({"A": 1, "B": 4})
    gauge.add_source(one.count)
    gauge.add_source(two.count)
    assert registry.get_sample_value("lesslabels_test_things", {"state": "A"}) == 3
    assert registry.get_sample_value("lesslabels_test_things", {"state": "B"}) == 4
    assert registry.get_sample_value("lesslabels_test_things", {"state": "C"}) is None  # not a known state
    del two  # a stopped service's source goes with it
    assert registry.get_sample_value("lesslabels_test_things", {"state": "B"}) == 0
    assert registry.get_sample_value("lesslabels_test_things", {"state": "A"}) == 2


def test_state_metrics_know_the_vocabulary_states():
    from lesslabels.contract import vocabulary

    assert metrics.TRAINER_JOBS.states == vocabulary.JOB_STATES


def test_the_job_manager_reports_its_jobs_by_state(tmp_path):
    from lesslabels.trainer.jobs import JobManager
    from lesslabels.contract import TrainRequest

    def jobs(state: str) -> float:
        return REGISTRY.get_sample_value("lesslabels_trainer_jobs", {"state": state}) or 0.0

    queued_before = jobs("QUEUED")
    manager = JobManager(tmp_path, runner=lambda job, report: None)  # never started: jobs stay queued
    manager.submit(TrainRequest(dataset="d", labels=("a", "b")))
    manager.submit(TrainRequest(dataset="d", labels=("a", "b")))
    assert jobs("QUEUED") == queued_before + 2
    manager.cancel(manager.list()[0].id)
    assert jobs("QUEUED") == queued_before + 1
    del manager
    assert jobs("QUEUED") == queued_before


def test_the_in_flight_budget_reports_its_bytes_and_refusals():
    from lesslabels.common import errors
    from lesslabels.scorer.limits import InFlightBudget

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    budget = InFlightBudget(100)
    held, refused = sample("lesslabels_scorer_inflight_bytes"), sample("lesslabels_scorer_inflight_refused_total")
    with budget.hold(60):
        assert sample("lesslabels_scorer_inflight_bytes") == held + 60
        with pytest.raises(errors.ResourceExhausted):
            with budget.hold(50):
                pass
        assert sample("lesslabels_scorer_inflight_refused_total") == refused + 1
        assert sample("lesslabels_scorer_inflight_bytes") == held + 60
    assert sample("lesslabels_scorer_inflight_bytes") == held
