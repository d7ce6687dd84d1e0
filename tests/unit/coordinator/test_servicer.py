"""CoordinatorService over real gRPC (in-process server, port 0) with the real pool and fake
trainer/scorer: status codes for bad input, proto conversion, WatchRun, human labelling by RPC."""

from __future__ import annotations

import threading

import grpc
import pytest

from lesslabels import contract
from lesslabels.contract import wire
from lesslabels.coordinator import metrics
from lesslabels.coordinator.servicer import CoordinatorServicer, registration
from lesslabels.common.server import Server
from lesslabels.v1 import coordinator_pb2, coordinator_pb2_grpc, pool_pb2, run_pb2, run_store_pb2
from tests.helpers import import_rows, server_settings_for_tests
from tests.stack import wait_for


@pytest.fixture
def coordinator(fake_stack):
    core = fake_stack.coordinator()
    server = Server(server_settings_for_tests(), [registration(CoordinatorServicer(core))], name="coordinator")
    port = server.start()
    server.set_serving()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield coordinator_pb2_grpc.CoordinatorServiceStub(channel)
    channel.close()
    server.stop(0)


def _config(**overrides) -> run_pb2.RunConfig:
    message = run_pb2.RunConfig(dataset="toy", random_seed=1)
    message.seed_size.count = 8
    message.batch_size.count = 6
    message.stopping.max_rounds = 2
    for key, value in overrides.items():
        setattr(message, key, value)
    return message


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def _start(stub, config):
    return stub.StartRun(coordinator_pb2.StartRunRequest(config=config), timeout=10)


def _wait_final(stub, run_id):
    return wait_for(
        lambda: (
            (r := stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=10).run).state
            in (run_pb2.RUN_STATE_COMPLETED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED)
            and r
        ),
        what=f"run {run_id} to end",
    )


def test_start_run_fills_defaults_and_completes(coordinator, fake_stack):
    run = _start(coordinator, run_pb2.RunConfig(dataset="toy"))
    assert run.state == run_pb2.RUN_STATE_PENDING and run.pool_size == 40
    assert run.config.strategy == run_pb2.STRATEGY_ENTROPY
    assert run.config.seed_size.fraction == pytest.approx(0.05) and run.config.batch_size.fraction == pytest.approx(0.1)
    assert run.config.stopping.max_rounds == 5 and run.config.oracle == run_pb2.ORACLE_MODE_SIMULATED
    done = _wait_final(coordinator, run.id)
    assert done.state == run_pb2.RUN_STATE_COMPLETED and done.stop_reason == "round limit 5 reached"
    detail = coordinator.GetRun(run_pb2.GetRunRequest(run_id=run.id), timeout=10)
    assert len(detail.rounds) == 5
    expected = fake_stack.scorer.expected_test_accuracy("toy")
    assert [r.test.count for r in detail.rounds] == [12] * 5 and {r.test.accuracy for r in detail.rounds} == {expected}
    assert set(detail.rounds[0].test.per_class_f1) <= {"flight", "airfare", "ground_service", "abbreviation"}
    listed = coordinator.ListRuns(run_pb2.ListRunsRequest(states=[run_pb2.RUN_STATE_COMPLETED]), timeout=10)
    assert [r.id for r in listed.runs] == [run.id]


def test_start_run_is_idempotent_under_its_request_id(coordinator):
    request = coordinator_pb2.StartRunRequest(config=_config(), request_id="abc")
    first = coordinator.StartRun(request, timeout=10)
    again = coordinator.StartRun(request, timeout=10)
    assert first.id == again.id
    assert len(coordinator.ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs) == 1


def test_a_start_run_retried_after_a_coordinator_restart_returns_the_first_run(fake_stack):
    """The key lives in the pool: a client retrying StartRun against a restarted coordinator
    must not get a second run."""
    request = coordinator_pb2.StartRunRequest(config=_config(), request_id="retry-me")
    ids = []
    for _ in range(2):  # the same pool, a fresh coordinator core and server each time
        core = fake_stack.coordinator()
        server = Server(server_settings_for_tests(), [registration(CoordinatorServicer(core))], name="coordinator")
        port = server.start()
        server.set_serving()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
            ids.append(stub.StartRun(request, timeout=10).id)
            other = stub.StartRun(
                coordinator_pb2.StartRunRequest(config=_config(), request_id=f"other-{len(ids)}"), timeout=10
            )
            assert other.id not in ids
            runs = stub.ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs
        server.stop(0)
        core.close()  # the process dies; its runs are left to the next coordinator
    assert ids[0] == ids[1]
    assert len(runs) == 3  # retry-me once, other-1, other-2


def test_an_overlong_request_id_is_refused_and_creates_nothing(coordinator):
    request = coordinator_pb2.StartRunRequest(config=_config(), request_id="k" * 129)
    code, details = _code(lambda: coordinator.StartRun(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "request_id is 129 characters; at most 128" in details
    assert coordinator.ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs == []


def _bad_configs():
    def cfg(**kw):
        message = _config()
        for path, value in kw.items():
            target = message
            *parents, leaf = path.split("__")
            for parent in parents:
                target = getattr(target, parent)
            setattr(target, leaf, value)
        return message

    return [
        pytest.param(cfg(dataset=""), "dataset is required", id="no-dataset"),
        pytest.param(
            cfg(seed_size__fraction=1.5),
            "run config: seed_size.fraction must be in (0, 1], got 1.5",
            id="seed-fraction>1",
        ),
        pytest.param(
            cfg(seed_size__fraction=-0.1),
            "run config: seed_size.fraction must be in (0, 1], got -0.1",
            id="seed-fraction<0",
        ),
        pytest.param(
            cfg(seed_size__count=-3), "run config: seed_size.count must be in [1, 10000000], got -3", id="seed-count<0"
        ),
        pytest.param(
            cfg(batch_size__count=0), "run config: batch_size: give a count or a fraction", id="batch-count-0"
        ),
        pytest.param(
            cfg(batch_size__fraction=0.0), "run config: batch_size: give a count or a fraction", id="batch-fraction-0"
        ),
        pytest.param(cfg(strategy=42), "run config: strategy: unknown value 42", id="unknown-strategy"),
        pytest.param(cfg(seed_strategy=9), "run config: seed_strategy: unknown value 9", id="unknown-seed-strategy"),
        pytest.param(cfg(oracle=7), "run config: oracle: unknown value 7", id="unknown-oracle"),
        pytest.param(
            cfg(stopping__target_accuracy=1.5),
            "run config: stopping.target_accuracy must be in [0, 1], got 1.5",
            id="target>1",
        ),
        pytest.param(
            cfg(stopping__stable_agreement=-1.0),
            "run config: stopping.stable_agreement must be in [0, 1], got -1.0",
            id="agreement<0",
        ),
        pytest.param(
            cfg(stopping__max_rounds=-1),
            "run config: stopping.max_rounds must be in [0, 100000], got -1",
            id="rounds<0",
        ),
        pytest.param(
            cfg(stopping__label_budget__fraction=2.0),
            "run config: stopping.label_budget.fraction must be in (0, 1], got 2.0",
            id="budget>1",
        ),
        pytest.param(cfg(stopping__label_budget__count=1000), "exceeds the pool of 40", id="budget>pool"),
        pytest.param(cfg(seed_size__count=600), "seed_size 600 exceeds the pool of 40 training texts", id="seed>pool"),
        pytest.param(
            cfg(hyperparameters__learning_rate=-1e-5),
            "run config: hyperparameters.learning_rate must be in (0, 1], got -1e-05",
            id="negative-lr",
        ),
        pytest.param(cfg(candidates=-5), "candidates must not be negative, got -5", id="negative-candidates"),
        pytest.param(cfg(candidates=4), "batch_size 6 (6 samples) exceeds candidates 4", id="batch>candidates"),
    ]


@pytest.mark.parametrize("config, message", _bad_configs())
def test_invalid_configs_are_invalid_argument(coordinator, config, message):
    code, details = _code(lambda: _start(coordinator, config))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details


def test_target_accuracy_without_a_test_split_is_refused(coordinator, pool_address):
    import_rows(pool_address, "no-test", [("greet", f"hello {i}") for i in range(10)])
    config = _config(dataset="no-test")
    config.stopping.target_accuracy = 0.9
    code, details = _code(lambda: _start(coordinator, config))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "target_accuracy 0.9 can never be reached" in details and "no test split" in details


def test_unknown_dataset_and_runs_are_not_found(coordinator):
    code, details = _code(lambda: _start(coordinator, _config(dataset="missing")))
    assert code == grpc.StatusCode.NOT_FOUND and "missing" in details
    for rpc, request in (
        (coordinator.GetRun, run_pb2.GetRunRequest(run_id=77)),
        (coordinator.CancelRun, coordinator_pb2.CancelRunRequest(run_id=77)),
        (coordinator.ResumeRun, coordinator_pb2.ResumeRunRequest(run_id=77)),
        (coordinator.GetPendingLabels, coordinator_pb2.GetPendingLabelsRequest(run_id=77)),
    ):
        code, details = _code(lambda rpc=rpc, request=request: rpc(request, timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND and "run 77" in details
    code, _ = _code(lambda: list(coordinator.WatchRun(coordinator_pb2.WatchRunRequest(run_id=77), timeout=10)))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(lambda: coordinator.GetRun(run_pb2.GetRunRequest(run_id=0), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_resume_of_a_completed_run_is_failed_precondition(coordinator):
    run = _start(coordinator, _config())
    _wait_final(coordinator, run.id)
    code, details = _code(lambda: coordinator.ResumeRun(coordinator_pb2.ResumeRunRequest(run_id=run.id), timeout=10))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "completed" in details


def test_watch_run_streams_rounds_until_completion(coordinator, fake_stack):
    fake_stack.trainer.hold.clear()  # keep round 0 training until the watch is open
    run = _start(coordinator, _config())
    stream = coordinator.WatchRun(coordinator_pb2.WatchRunRequest(run_id=run.id), timeout=30)
    first = next(stream)
    assert first.run.id == run.id and first.run.state != run_pb2.RUN_STATE_COMPLETED
    fake_stack.trainer.hold.set()
    events = [first] + list(stream)
    assert events[-1].run.state == run_pb2.RUN_STATE_COMPLETED
    assert {e.round.index for e in events if e.HasField("round")} == {0, 1}
    messages = [e.message for e in events]
    assert any(m.startswith("round 1: test accuracy") for m in messages)
    assert any(m.startswith("round 0: selected 6 samples") for m in messages)
    # Watching a finished run gives its state and ends.
    again = list(coordinator.WatchRun(coordinator_pb2.WatchRunRequest(run_id=run.id), timeout=10))
    assert len(again) == 1 and again[0].run.state == run_pb2.RUN_STATE_COMPLETED


def test_training_and_scoring_progress_reach_get_run_and_watch_run(coordinator, fake_stack):
    """Steps done / planned, the trainer's measured samples per second and ETA, and texts scored with
    their measured speed travel WatchJob -> WatchRun and GetRun (issue 23, item 3)."""
    fake_stack.trainer.hold.clear()
    run = _start(coordinator, _config())
    events = []
    watching = threading.Thread(
        target=lambda: events.extend(coordinator.WatchRun(coordinator_pb2.WatchRunRequest(run_id=run.id), timeout=30))
    )
    watching.start()
    detail = wait_for(
        lambda: (
            (d := coordinator.GetRun(run_pb2.GetRunRequest(run_id=run.id), timeout=10)).progress.unit == "steps" and d
        ),
        what="training progress in GetRun",
    )
    progress = detail.progress
    assert (progress.done, progress.total, progress.samples_per_second, progress.eta_seconds) == (1, 4, 12.5, 3.0)
    assert progress.elapsed_seconds >= 0 and detail.run.step == run_pb2.RUN_STEP_TRAIN
    assert (
        "round 0: training epoch 1, steps 1/4, 12.5 samples/s" in detail.message and "about 0:03 left" in detail.message
    )
    fake_stack.trainer.hold.set()
    final = _wait_final(coordinator, run.id)
    watching.join(timeout=30)
    assert final.state == run_pb2.RUN_STATE_COMPLETED
    scoring = [e.progress for e in events if e.progress.unit == "texts"]
    assert scoring and all(0 < p.done <= p.total for p in scoring)
    assert any(p.done == p.total and p.per_second > 0 and p.eta_seconds == 0 for p in scoring)
    assert all(0.0 <= e.step_progress <= 1.0 for e in events)
    # An ended run has no step running: GetRun names none.
    ended = coordinator.GetRun(run_pb2.GetRunRequest(run_id=run.id), timeout=10)
    assert ended.message == "" and not ended.HasField("progress")


def test_errors_from_services_behind_the_coordinator_name_no_internal_address(fake_stack, caplog):
    """Issue 25 F8: a downstream error reaches the public caller as "pool: ...", never "pool at
    127.0.0.1:1: ..."; the coordinator's log keeps the address."""
    from lesslabels.client import PoolClient

    dead = "127.0.0.1:1"
    core = fake_stack.coordinator(pool=PoolClient(dead, timeout=2))
    server = Server(server_settings_for_tests(), [registration(CoordinatorServicer(core))], name="coordinator")
    port = server.start()
    server.set_serving()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
            with caplog.at_level("INFO"):
                code, details = _code(lambda: _start(stub, _config()))
    finally:
        server.stop(0)
        core.close()
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith("pool: ") and dead not in details, details
    assert dead in caplog.text  # the operator still sees where


def test_human_labelling_over_rpc(coordinator, fake_stack):
    run = _start(coordinator, _config(oracle=run_pb2.ORACLE_MODE_HUMAN, asynchronous=False))
    pending = wait_for(
        lambda: (
            (
                p := coordinator.GetPendingLabels(coordinator_pb2.GetPendingLabelsRequest(run_id=run.id), timeout=10)
            ).remaining
            and p
        ),
        what="the seed batch",
    )
    assert pending.round == 0 and len(pending.samples) == 8 and pending.remaining == 8
    assert all(s.text for s in pending.samples)
    first = [pool_pb2.LabelAssignment(sample_id=s.sample_id, label="flight") for s in pending.samples[:5]]
    reply = coordinator.SubmitRunLabels(
        coordinator_pb2.SubmitRunLabelsRequest(run_id=run.id, labels=first, idempotency_key="a"), timeout=10
    )
    assert reply.remaining == 3 and reply.result.recorded == 5
    reply = coordinator.SubmitRunLabels(
        coordinator_pb2.SubmitRunLabelsRequest(run_id=run.id, labels=first, idempotency_key="a"), timeout=10
    )
    assert reply.remaining == 3 and reply.result.recorded == 0
    code, details = _code(
        lambda: coordinator.SubmitRunLabels(
            coordinator_pb2.SubmitRunLabelsRequest(
                run_id=run.id, labels=[pool_pb2.LabelAssignment(sample_id=99999, label="flight")]
            ),
            timeout=10,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not in the pending batch" in details
    listed = coordinator.GetPendingLabels(coordinator_pb2.GetPendingLabelsRequest(run_id=run.id), timeout=10)
    assert sum(1 for s in listed.samples if s.label == "flight") == 5
    rest = [pool_pb2.LabelAssignment(sample_id=s.sample_id, label="airfare") for s in pending.samples[5:]]
    reply = coordinator.SubmitRunLabels(coordinator_pb2.SubmitRunLabelsRequest(run_id=run.id, labels=rest), timeout=10)
    assert reply.remaining == 0
    wait_for(
        lambda: (
            coordinator.GetPendingLabels(coordinator_pb2.GetPendingLabelsRequest(run_id=run.id), timeout=10).round == 1
        ),
        what="the next batch",
    )


def test_cancel_over_rpc(coordinator, fake_stack):
    fake_stack.trainer.hold.clear()
    run = _start(coordinator, _config())
    wait_for(fake_stack.trainer.started.is_set, what="training to start")
    cancelled = coordinator.CancelRun(coordinator_pb2.CancelRunRequest(run_id=run.id), timeout=10)
    assert cancelled.state == run_pb2.RUN_STATE_CANCELLED and cancelled.stop_reason == "cancelled by a user"


# ---------------------------------------------------------------- pure pieces


def test_agreement_compares_common_samples_only():
    import numpy as np

    a = metrics.agreement(
        np.array([1, 2, 3, 4]), np.array(["x", "y", "x", "y"]), np.array([4, 3, 2, 9]), np.array(["y", "y", "y", "x"])
    )
    assert a == pytest.approx(2 / 3)


def test_run_config_round_trips_through_proto():
    config = contract.RunConfig(
        dataset="toy",
        strategy="clustered_entropy",
        seed_strategy="diverse",
        oracle="human",
        random_seed=5,
        stopping=contract.StoppingRule(label_budget=contract.Amount(fraction=0.1), stable_agreement=0.95),
        hyperparameters={"learning_rate": 3e-5, "max_epochs": 4},
        warm_start=True,
    ).with_defaults()
    assert wire.run_config_from_proto(wire.run_config_to_proto(config)) == config


# ---------------------------------------------------------------- main and build_server


def test_build_server_reports_serving_after_ready_and_resumes_runs(pool_address):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from lesslabels.coordinator.main import build_server
    from tests.helpers import pool_stub
    from tests.stack import load_toy_dataset

    load_toy_dataset(pool_address)
    # A run left RUNNING by a coordinator that died (the trainer/scorer addresses lead nowhere here).
    stub = pool_stub(pool_address)
    left = stub.CreateRun(run_store_pb2.CreateRunRequest(config=_config(oracle=run_pb2.ORACLE_MODE_HUMAN)), timeout=10)
    stub.UpdateRun(run_store_pb2.UpdateRunRequest(run_id=left.id, state=run_pb2.RUN_STATE_RUNNING), timeout=10)
    server = build_server(server_settings_for_tests(), pool_address, "127.0.0.1:1", "127.0.0.1:1", rpc_timeout=5)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert (
                health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                == health_pb2.HealthCheckResponse.NOT_SERVING
            )
            assert server.ready() == [left.id]
            assert (
                health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                == health_pb2.HealthCheckResponse.SERVING
            )
            # The resumed human run selected its seed set and now waits for labels.
            coordinator = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
            pending = wait_for(
                lambda: (
                    coordinator.GetPendingLabels(
                        coordinator_pb2.GetPendingLabelsRequest(run_id=left.id), timeout=10
                    ).remaining
                ),
                what="seed batch",
            )
            assert pending == 8
    finally:
        server.stop(0)


def test_main_refuses_bad_flags(capsys):
    from lesslabels.coordinator.main import main

    with pytest.raises(SystemExit):
        main(["--rpc-timeout", "0", "--port", "0"])
    assert "--rpc-timeout must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--port", "70000"])


def test_main_waits_for_dependencies_then_gives_up_clearly(monkeypatch, caplog):
    """`lesslabels coordinator` started without its dependencies waits (health NOT_SERVING), then
    exits 1 naming the address it waited for (here after 1 s)."""
    from lesslabels.coordinator import main as coordinator_main

    monkeypatch.setenv("LESSLABELS_POOL_ADDRESS", "127.0.0.1:1")
    monkeypatch.setattr(coordinator_main, "setup_logging", lambda *a, **k: None)
    with caplog.at_level("INFO"):
        assert coordinator_main.main(["--port", "0", "--dependency-timeout", "1", "--host", "127.0.0.1"]) == 1
    assert "127.0.0.1:1 not serving" in caplog.text
