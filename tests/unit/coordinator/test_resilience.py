"""The coordinator survives bad data and outages: the pool refuses bad run
configurations at write, a bad stored run is reported FAILED instead of breaking ListRuns and
recover(), and runs ride out a pool that is stopped and started again."""

from __future__ import annotations

import logging
import sqlite3

import grpc
import pytest

from lesslabels.common.channels import wait_until_serving
from lesslabels import contract
from lesslabels.contract import vocabulary
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.pool.main import build_server as build_pool
from lesslabels.v1 import common_pb2, run_pb2, run_store_pb2
from tests.helpers import server_settings_for_tests
from tests.stack import load_toy_dataset, wait_for, wait_for_state


def _config(**fields) -> run_pb2.RunConfig:
    config = run_pb2.RunConfig(dataset="toy")
    config.seed_size.count = 8
    config.batch_size.count = 6
    config.stopping.max_rounds = 2
    for path, value in fields.items():
        *parents, name = path.split(".")
        target = config
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)
    return config


BAD_CONFIGS = [
    ({"oracle": 7}, "run config: oracle: unknown value 7"),
    ({"strategy": 99}, "run config: strategy: unknown value 99"),
    ({"seed_strategy": 5}, "run config: seed_strategy: unknown value 5"),
    ({"hyperparameters.learning_rate": float("nan")}, "run config: hyperparameters.learning_rate must be finite"),
    ({"hyperparameters.learning_rate": 2.0}, "hyperparameters.learning_rate must be in (0, 1], got 2.0"),
    ({"hyperparameters.max_length": 100000}, "hyperparameters.max_length must be in [8, 8192], got 100000"),
    ({"hyperparameters.max_length": 4}, "hyperparameters.max_length must be in [8, 8192], got 4"),
    ({"hyperparameters.batch_size": 1_000_000}, "hyperparameters.batch_size must be in [1, 4096], got 1000000"),
    ({"hyperparameters.batch_size": -1}, "hyperparameters.batch_size must be in [1, 4096], got -1"),
    ({"hyperparameters.class_balance": 9}, "run config: hyperparameters.class_balance: unknown value 9"),
    ({"hyperparameters.warmup_ratio": float("inf")}, "hyperparameters.warmup_ratio must be finite"),
    ({"hyperparameters.warmup_ratio": 1.0}, "hyperparameters.warmup_ratio must be in [0, 1), got 1.0"),
    ({"hyperparameters.pooling": 7}, "run config: hyperparameters.pooling: unknown value 7"),
    ({"random_seed": -1}, "random_seed must be in [0,"),
    ({"seed_size.fraction": 2.0}, "seed_size.fraction must be in (0, 1], got 2.0"),
    ({"batch_size.count": 10**12}, "batch_size.count must be in [1,"),
    ({"stopping.target_accuracy": float("nan")}, "stopping.target_accuracy must be finite"),
    ({"stopping.max_rounds": -3}, "stopping.max_rounds must be in [0,"),
    ({"base_model": "m" * 5000}, "base_model is 5000 characters; at most 1024"),
    ({"candidates": -5}, "run config: candidates must not be negative, got -5"),
    ({"candidates": 10**12}, "run config: candidates must be at most 1000000000"),
]


@pytest.mark.parametrize(
    "fields, message", BAD_CONFIGS, ids=[next(iter(f)) + "-" + str(i) for i, (f, _) in enumerate(BAD_CONFIGS)]
)
def test_create_run_refuses_a_bad_config_naming_the_field(pool_address, stub, fields, message):
    load_toy_dataset(pool_address)
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateRun(run_store_pb2.CreateRunRequest(config=_config(**fields)), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()
    assert len(caught.value.details()) < 300
    assert stub.ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs == []


def test_create_run_takes_a_config_at_its_bounds(pool_address, stub):
    load_toy_dataset(pool_address)
    config = _config(random_seed=2**32 - 1)
    config.hyperparameters.CopyFrom(
        common_pb2.Hyperparameters(
            learning_rate=1.0, max_length=8192, batch_size=8, warmup_ratio=0.0, pooling=common_pb2.POOLING_CLS
        )
    )
    run = stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=10)
    assert run.state == run_pb2.RUN_STATE_PENDING and run.config.hyperparameters.max_length == 8192
    assert run.config.hyperparameters.pooling == common_pb2.POOLING_CLS


@pytest.mark.parametrize(
    "stored",
    [
        '{"dataset": "toy", "oracle": 7}',
        "not json at all",
        '{"dataset": "toy", "hyperparameters": {"learning_rate": "NaN"}}',
        "[1, 2]",
    ],
)
def test_a_bad_stored_run_is_reported_failed_and_breaks_nothing(pool_address, stub, database_url, fake_stack, stored):
    full = _config(
        strategy=run_pb2.STRATEGY_ENTROPY,
        seed_strategy=run_pb2.SEED_STRATEGY_RANDOM,
        oracle=run_pb2.ORACLE_MODE_SIMULATED,
    )
    good = stub.CreateRun(run_store_pb2.CreateRunRequest(config=full), timeout=10)
    bad = stub.CreateRun(run_store_pb2.CreateRunRequest(config=_config()), timeout=10)
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE runs SET config_json = ? WHERE id = ?", (stored, bad.id))
    runs = {r.id: r for r in stub.ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs}
    assert runs[good.id].state == run_pb2.RUN_STATE_PENDING
    assert runs[bad.id].state == run_pb2.RUN_STATE_FAILED
    assert runs[bad.id].error.startswith("stored configuration refused: run config")
    assert runs[bad.id].config.dataset == "toy"
    assert stub.GetRun(run_pb2.GetRunRequest(run_id=bad.id), timeout=10).state == run_pb2.RUN_STATE_FAILED
    # The mark is stored: an active-states listing leaves the run out, and the coordinator starts
    # (recover) and drives the good run to its end.
    active = stub.ListRuns(run_pb2.ListRunsRequest(states=[run_pb2.RUN_STATE_PENDING]), timeout=10).runs
    assert [r.id for r in active] == [good.id]
    core = fake_stack.coordinator()
    assert core.recover() == [good.id]
    pool = RunStoreClient(pool_address, timeout=10)
    assert wait_for_state(pool, good.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"
    assert pool.get_run(bad.id).state == "FAILED"


def _stop_pool_until(fake_stack, pool_server, database_url, ready) -> object:
    """Stop the pool server, wait for ``ready()``, start a new pool on the same port and database."""
    port = pool_server.port
    pool_server.stop(0)
    wait_for(ready, timeout=30, what="the coordinator to notice the outage")
    server = build_pool(server_settings_for_tests(port=port), database_url)
    server.start()
    server.set_serving()
    wait_until_serving(fake_stack.pool_address, service="lesslabels.v1.PoolService", timeout=30)
    return server


@pytest.mark.slow  # chaos, 10 s (make test-slow, CI)
def test_a_run_rides_out_a_pool_that_is_stopped_and_started(fake_stack, pool_server, database_url, caplog):
    fake_stack.trainer.hold.clear()
    core = fake_stack.coordinator()
    core._outage_seconds = 60.0  # longer than the outage below
    pool = RunStoreClient(fake_stack.pool_address, timeout=10)
    run = core.start_run(contract.RunConfig(**{**_small_run_fields(), "stopping": contract.StoppingRule(max_rounds=2)}))
    assert fake_stack.trainer.started.wait(20)
    caplog.set_level(logging.WARNING, logger="lesslabels.coordinator.orchestrator")

    def retried():
        fake_stack.trainer.hold.set()  # the job ends while the pool is down: recording it fails
        return sum("event=step_retry" in r.getMessage() for r in caplog.records) >= 3

    server = _stop_pool_until(fake_stack, pool_server, database_url, retried)
    pool = RunStoreClient(fake_stack.pool_address, timeout=10)  # a fresh channel, not one in reconnect backoff
    try:
        done = wait_for_state(pool, run.id, vocabulary.FINAL_RUN_STATES)
        assert done.state == "COMPLETED" and done.error == ""
        # The same worker rode the outage out (no supervisor runs here: recover() was not called).
        assert not any("event=worker_crashed" in r.getMessage() for r in caplog.records)
    finally:
        server.stop(0)


@pytest.mark.slow  # chaos, 10 s (make test-slow, CI)
def test_a_run_whose_worker_ended_without_an_outcome_is_picked_up_again(fake_stack, pool_server, database_url, caplog):
    fake_stack.trainer.hold.clear()
    core = fake_stack.coordinator()
    core._outage_seconds = 0.3  # the worker gives up during the outage, and cannot record FAILED
    core.recover()  # starts the supervisor
    pool = RunStoreClient(fake_stack.pool_address, timeout=10)
    run = core.start_run(contract.RunConfig(**{**_small_run_fields(), "stopping": contract.StoppingRule(max_rounds=2)}))
    assert fake_stack.trainer.started.wait(20)
    caplog.set_level(logging.WARNING, logger="lesslabels.coordinator.orchestrator")

    def worker_gone():
        fake_stack.trainer.hold.set()
        return run.id not in core.active_runs()

    server = _stop_pool_until(fake_stack, pool_server, database_url, worker_gone)
    pool = RunStoreClient(fake_stack.pool_address, timeout=10)  # a fresh channel, not one in reconnect backoff
    try:
        assert any("event=worker_crashed" in r.getMessage() for r in caplog.records)
        done = wait_for_state(pool, run.id, vocabulary.FINAL_RUN_STATES)
        assert done.state == "COMPLETED" and done.error == ""
        assert any(f"event=run_picked_up run={run.id}" in r.getMessage() for r in caplog.records)
    finally:
        server.stop(0)


def test_recover_with_the_pool_down_picks_the_runs_up_once_it_answers(fake_stack, pool_server, database_url):
    pool = RunStoreClient(fake_stack.pool_address, timeout=10)
    fake_stack.trainer.hold.clear()
    stub_run = fake_stack.coordinator()
    run = stub_run.start_run(
        contract.RunConfig(**{**_small_run_fields(), "stopping": contract.StoppingRule(max_rounds=1)})
    )
    assert fake_stack.trainer.started.wait(20)
    stub_run.close()
    port = pool_server.port
    pool_server.stop(0)
    core = fake_stack.coordinator()
    assert core.recover() == []  # the pool is down: nothing to pick up yet, and no crash
    server = build_pool(server_settings_for_tests(port=port), database_url)
    server.start()
    server.set_serving()
    wait_until_serving(fake_stack.pool_address, service="lesslabels.v1.PoolService", timeout=30)
    fake_stack.trainer.hold.set()
    pool = RunStoreClient(fake_stack.pool_address, timeout=10)
    try:
        assert wait_for_state(pool, run.id, "COMPLETED").error == ""
    finally:
        server.stop(0)


def _small_run_fields() -> dict:
    return dict(
        dataset="toy",
        seed_size=contract.Amount(count=8),
        batch_size=contract.Amount(count=6),
        random_seed=7,
    )
