"""The docker-compose topology end to end: active learning through it, the token on the public
scorer port, a scorer crash in the middle of a run, a service started before its dependency.

Every test runs against ``deployment`` (see conftest.py): the compose file's services as local
processes, and again under a real ``docker compose up`` where a Docker engine answers.
"""

from __future__ import annotations

import time
import uuid

import pytest

from lesslabels.client import (
    CoordinatorClient,
    PoolClient,
    RunConfig,
    RunDetail,
    RunEvent,
    ScorerClient,
    Unauthenticated,
)
from lesslabels.contract.vocabulary import FINAL_RUN_STATES as FINAL_STATES
from tests.integration.values import DATASET, TOKEN, TRAIN_ROWS, tiny_run_config

pytestmark = pytest.mark.integration

SEED, BATCH, ROUNDS = 24, 12, 2
RUN_TIMEOUT = 300.0


def run_config(base_model: str, seed: int = 3) -> RunConfig:
    return tiny_run_config(base_model, seed_size=SEED, batch_size=BATCH, rounds=ROUNDS, random_seed=seed)


def run_to_the_end(deployment, config: RunConfig, on_event=None) -> RunDetail:
    """Start a run through the public coordinator port (the SDK) and follow it until it is over."""
    with CoordinatorClient(deployment.topology.public_address("coordinator"), token=TOKEN, timeout=30) as coordinator:
        run = coordinator.start_run(config, request_id=str(uuid.uuid4()))
        deadline = time.monotonic() + RUN_TIMEOUT
        for event in coordinator.watch(run.id, window=60):
            if on_event is not None:
                on_event(event)
            if time.monotonic() > deadline:
                break
        detail = coordinator.get_run(run.id)
    if detail.run.state not in FINAL_STATES:
        pytest.fail(f"run {run.id} not over after {RUN_TIMEOUT:.0f}s: {detail.run}")
    return detail


def labelled_in_run(deployment, run_id: int) -> list[int]:
    with PoolClient(deployment.topology.address("pool"), token=TOKEN, timeout=30) as pool:
        return [s.id for s in pool.list_samples(DATASET, state="labelled", run_id=run_id, page_size=5000)]


def assert_two_clean_rounds(deployment, detail: RunDetail) -> None:
    """Completed, rounds 0 and 1 exactly once each, the labels they say, each with its own model."""
    assert detail.run.state == "COMPLETED", detail.run.error
    rounds = list(detail.rounds)
    assert [r.index for r in rounds] == [0, 1]
    assert [r.labelled_count for r in rounds] == [SEED, SEED + BATCH]
    assert all(r.checkpoint_id and r.train_job_id for r in rounds)
    assert len({r.checkpoint_id for r in rounds}) == 2 and len({r.train_job_id for r in rounds}) == 2
    assert all(r.test is not None and 0.0 <= r.test.accuracy <= 1.0 and r.finished_at for r in rounds)
    labelled = labelled_in_run(deployment, detail.run.id)
    # Round 1 selected one batch; the final round selects none: nothing acquired twice, nothing lost.
    assert len(labelled) == len(set(labelled)) == SEED + BATCH
    assert detail.run.labelled_count == SEED + BATCH
    assert detail.run.pool_size == TRAIN_ROWS  # every row the one-off `lesslabels import` sent


@pytest.fixture(scope="module")
def completed_run(deployment) -> RunDetail:
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
    with ScorerClient(address, token=TOKEN, timeout=60) as scorer:
        scores = scorer.score(texts, run=completed_run.run.id)
    assert scores.checkpoint_id == completed_run.rounds[-1].checkpoint_id
    assert scores.probabilities.shape == (len(texts), len(scores.labels))
    assert all(label in scores.labels for label in scores.predicted)
    for token in ("", "wrong-token"):
        with ScorerClient(address, token=token, timeout=30) as scorer, pytest.raises(Unauthenticated):
            scorer.score(texts, run=completed_run.run.id)
    # The coordinator's public port too.
    with (
        CoordinatorClient(deployment.topology.public_address("coordinator"), timeout=30) as coordinator,
        pytest.raises(Unauthenticated),
    ):
        coordinator.list_runs()
    # The pool and the trainer are not published: only scorer and coordinator are public.
    for name in ("pool", "trainer"):
        assert not deployment.topology.services[name].published


def test_the_web_app_on_its_public_port_asks_for_the_token_then_shows_the_run(deployment, completed_run):
    import httpx

    base = f"http://{deployment.topology.public_address('web')}"
    with httpx.Client(base_url=base, timeout=30) as browser:
        first = browser.get("/runs", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/login")
        assert "default-src 'self'" in first.headers["content-security-policy"]
        assert browser.post("/login", data={"token": "wrong-token", "next": "/runs"}).status_code == 401
        reply = browser.post("/login", data={"token": TOKEN, "next": "/runs"}, follow_redirects=True)
        assert reply.status_code == 200 and f'href="/runs/{completed_run.run.id}"' in reply.text
        page = browser.get(f"/runs/{completed_run.run.id}")
        assert page.status_code == 200 and 'class="accuracy"' in page.text  # the learning curve, through the SDK


@pytest.mark.slow  # chaos, 13 s: a scorer killed mid-run (make test-slow, CI)
def test_scorer_killed_mid_run_restarts_and_the_run_loses_no_round(deployment, completed_run):
    killed = []

    def kill_while_scoring(event: RunEvent) -> None:
        # The coordinator calls the scorer to evaluate and to score the pool: kill it then, so
        # that the call in flight breaks (round 0 normally; round 1 if round 0's events were missed).
        if not killed and event.run.state == "RUNNING" and event.run.step in ("EVALUATE", "SCORE"):
            deployment.topology.kill("scorer")
            killed.append((event.run.round, event.run.step))

    detail = run_to_the_end(deployment, run_config(deployment.base_model, seed=5), on_event=kill_while_scoring)
    assert killed, "the run never reached a scoring step"
    assert deployment.topology.restarts("scorer") == 1  # the restart policy, not the test, brought it back
    assert_two_clean_rounds(deployment, detail)
    deployment.topology.wait_healthy("scorer", timeout=60)


@pytest.mark.slow  # chaos, 14 s: services started out of order (make test-slow, CI)
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
