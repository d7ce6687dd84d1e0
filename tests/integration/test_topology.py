"""The docker-compose topology end to end: active learning through it, the token on the public
scorer port, a scorer crash in the middle of a run, a service started before its dependency.

Every test runs against ``deployment`` (see conftest.py): the compose file's services as local
processes, and again under a real ``docker compose up`` where a Docker engine answers.
"""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from lesslabels.common.channels import make_channel
from lesslabels.v1 import (
    common_pb2,
    coordinator_pb2,
    coordinator_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    run_pb2,
    scorer_pb2,
    scorer_pb2_grpc,
)
from tests.integration.values import DATASET, TOKEN, TRAIN_ROWS

pytestmark = pytest.mark.integration

SEED, BATCH, ROUNDS = 24, 12, 2
FINAL = (run_pb2.RUN_STATE_COMPLETED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED)
RUN_TIMEOUT = 300.0


def run_config(base_model: str, seed: int = 3) -> run_pb2.RunConfig:
    return run_pb2.RunConfig(
        dataset=DATASET, base_model=base_model, strategy=run_pb2.STRATEGY_ENTROPY,
        seed_size=run_pb2.Amount(count=SEED), batch_size=run_pb2.Amount(count=BATCH),
        stopping=run_pb2.StoppingRule(max_rounds=ROUNDS), oracle=run_pb2.ORACLE_MODE_SIMULATED, random_seed=seed,
        hyperparameters=common_pb2.Hyperparameters(max_epochs=1, batch_size=8, max_length=32, num_threads=1),
    )


def coordinator(deployment) -> coordinator_pb2_grpc.CoordinatorServiceStub:
    channel = make_channel(deployment.topology.public_address("coordinator"), token=TOKEN)
    return coordinator_pb2_grpc.CoordinatorServiceStub(channel)


def run_to_the_end(deployment, config: run_pb2.RunConfig, on_event=None) -> coordinator_pb2.RunDetail:
    """Start a run through the public coordinator port and follow it until it is over."""
    stub = coordinator(deployment)
    run = stub.StartRun(coordinator_pb2.StartRunRequest(config=config, request_id=str(uuid.uuid4())), timeout=30)
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        try:
            for event in stub.WatchRun(coordinator_pb2.WatchRunRequest(run_id=run.id),
                                       timeout=max(1.0, deadline - time.monotonic())):
                if on_event is not None:
                    on_event(event)
                if event.run.state in FINAL:
                    break
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                break
        detail = stub.GetRun(pool_pb2.GetRunRequest(run_id=run.id), timeout=30)
        if detail.run.state in FINAL:
            return detail
    pytest.fail(f"run {run.id} not over after {RUN_TIMEOUT:.0f}s: {detail.run}")


def labelled_in_run(deployment, run_id: int) -> list[int]:
    stub = pool_pb2_grpc.PoolServiceStub(make_channel(deployment.topology.address("pool"), token=TOKEN))
    request = pool_pb2.ListSamplesRequest(dataset=DATASET, state=pool_pb2.LABEL_STATE_LABELLED, run_id=run_id,
                                          page_size=5000)
    return [s.id for page in stub.ListSamples(request, timeout=30) for s in page.samples]


def assert_two_clean_rounds(deployment, detail: coordinator_pb2.RunDetail) -> None:
    """Completed, rounds 0 and 1 exactly once each, the labels they say, each with its own model."""
    assert detail.run.state == run_pb2.RUN_STATE_COMPLETED, detail.run.error
    rounds = list(detail.rounds)
    assert [r.index for r in rounds] == [0, 1]
    assert [r.labelled_count for r in rounds] == [SEED, SEED + BATCH]
    assert all(r.checkpoint_id and r.train_job_id for r in rounds)
    assert len({r.checkpoint_id for r in rounds}) == 2 and len({r.train_job_id for r in rounds}) == 2
    assert all(0.0 <= r.test.accuracy <= 1.0 and r.finished_at for r in rounds)
    labelled = labelled_in_run(deployment, detail.run.id)
    # Round 1 selected one batch; the final round selects none: nothing acquired twice, nothing lost.
    assert len(labelled) == len(set(labelled)) == SEED + BATCH
    assert detail.run.labelled_count == SEED + BATCH
    assert detail.run.pool_size == TRAIN_ROWS  # every row the one-off `lesslabels import` sent


@pytest.fixture(scope="module")
def completed_run(deployment) -> coordinator_pb2.RunDetail:
    return run_to_the_end(deployment, run_config(deployment.base_model))


def test_active_learning_runs_end_to_end_through_the_topology(deployment, completed_run):
    assert_two_clean_rounds(deployment, completed_run)
    # Every service is still up and healthy after the run, none restarted.
    for name in ("pool", "trainer", "scorer", "coordinator"):
        assert deployment.topology.health(name)[0], name
        assert deployment.topology.restarts(name) == 0, name


def test_external_client_scores_on_the_public_scorer_port_with_the_token(deployment, completed_run):
    address = deployment.topology.public_address("scorer")
    texts = ["show me flights from boston to denver", "how much is a ticket to dallas"]
    request = scorer_pb2.ScoreRequest(model=common_pb2.ModelRef(latest_of_run=completed_run.run.id), texts=texts)
    with make_channel(address, token=TOKEN) as channel:
        reply = scorer_pb2_grpc.ScorerServiceStub(channel).Score(request, timeout=60)
    assert reply.checkpoint_id == completed_run.rounds[-1].checkpoint_id
    assert len(reply.scores) == len(texts)
    assert all(score.predicted_label in reply.labels for score in reply.scores)
    for token in ("", "wrong-token"):
        with make_channel(address, token=token) as channel, pytest.raises(grpc.RpcError) as info:
            scorer_pb2_grpc.ScorerServiceStub(channel).Score(request, timeout=30)
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED, token
    # The coordinator's public port too.
    with make_channel(deployment.topology.public_address("coordinator")) as channel, pytest.raises(grpc.RpcError) as info:
        coordinator_pb2_grpc.CoordinatorServiceStub(channel).ListRuns(pool_pb2.ListRunsRequest(), timeout=30)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    # The pool and the trainer are not published: only scorer and coordinator are public.
    for name in ("pool", "trainer"):
        assert not deployment.topology.services[name].published


def test_scorer_killed_mid_run_restarts_and_the_run_loses_no_round(deployment, completed_run):
    killed = []

    def kill_while_scoring(event: coordinator_pb2.RunEvent) -> None:
        # The coordinator calls the scorer to evaluate and to score the pool: kill it then, so
        # that the call in flight breaks (round 0 normally; round 1 if round 0's events were missed).
        if (not killed and event.run.state == run_pb2.RUN_STATE_RUNNING
                and event.run.step in (run_pb2.RUN_STEP_EVALUATE, run_pb2.RUN_STEP_SCORE)):
            deployment.topology.kill("scorer")
            killed.append((event.run.round, run_pb2.RunStep.Name(event.run.step)))

    detail = run_to_the_end(deployment, run_config(deployment.base_model, seed=5), on_event=kill_while_scoring)
    assert killed, "the run never reached a scoring step"
    assert deployment.topology.restarts("scorer") == 1  # the restart policy, not the test, brought it back
    assert_two_clean_rounds(deployment, detail)
    deployment.topology.wait_healthy("scorer", timeout=60)


@pytest.mark.parametrize("backend", ["local", "docker"])
def test_a_service_started_before_its_dependency_waits_then_serves(backend_factory, backend):
    topology, _ = backend_factory(backend)
    topology.start("trainer", with_deps=False, wait=False)
    deadline = time.monotonic() + 60
    answer = ""
    while time.monotonic() < deadline and "NOT_SERVING" not in answer:
        ok, answer = topology.health("trainer")
        assert not ok, answer
        time.sleep(0.5)
    assert "NOT_SERVING" in answer  # up and answering, not ready: it waits for the pool
    time.sleep(3)  # a few more of its retries against the missing pool
    assert topology.is_running("trainer") and not topology.health("trainer")[0]
    topology.start("pool")
    topology.wait_healthy("trainer", timeout=90)
    assert topology.is_running("trainer") and topology.restarts("trainer") == 0
