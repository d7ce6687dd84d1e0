"""After tiny runs through the real in-process services (pool, trainer, scorer, coordinator, tiny
BERT), each server's /metrics, scraped over HTTP, shows its counters moved by the right amounts:
requests, rounds, labels acquired and recorded, trainings, scorer batches; a human run through
the web app shows the time it waited for labels and the labels per person.

The services share this test's process, so each endpoint serves the same (process-wide) numbers;
the gRPC series tell the services apart by ``grpc_service``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from lesslabels.client import Amount, CoordinatorClient, RunConfig, StoppingRule
from lesslabels.web.app import create_app
from lesslabels.web.backend import Addresses, SdkBackend
from tests.humanrun import gold, start_human_run
from tests.scrape import moved, scrape, value
from tests.stack import load_toy_dataset, start_real_stack, wait_for
from tests.unit.web.test_web import csrf_of

SERVICES = ("pool", "trainer", "scorer", "coordinator")


@pytest.fixture
def stack(tmp_path, tiny_bert_dir):
    stack, stop = start_real_stack(tmp_path, model_dirs=(str(tiny_bert_dir),), metrics=True)
    load_toy_dataset(stack.pool_address)
    yield stack
    stop()


def scrape_all(stack) -> dict:
    return {name: scrape(port) for name, port in stack.metrics_ports.items()}


def handled(samples, service: str, method: str, code: str = "OK", kind: str = "unary") -> float:
    labels = {"grpc_service": f"lesslabels.v1.{service}", "grpc_method": method, "grpc_type": kind}
    return value(samples, "lesslabels_grpc_server_handled_total", **labels, grpc_code=code)


def test_a_two_round_run_moves_every_services_counters(stack, tiny_bert_dir):
    before = scrape_all(stack)
    config = RunConfig(
        dataset="toy",
        base_model=str(tiny_bert_dir),
        random_seed=3,
        seed_size=Amount(count=12),
        batch_size=Amount(count=8),
        stopping=StoppingRule(max_rounds=2),
        hyperparameters={"max_epochs": 1, "batch_size": 8, "max_length": 16, "num_threads": 1},
    )
    with CoordinatorClient(stack.coordinator_address, timeout=30) as coordinator:
        run = coordinator.start_run(config)
        events = list(coordinator.watch(run.id))
    assert events[-1].run.state == "COMPLETED", events[-1].run.error
    after = scrape_all(stack)
    assert set(after) == set(SERVICES)
    for name in SERVICES:  # every endpoint answers, with the whole catalogue
        assert ("lesslabels_coordinator_rounds_total", ()) in after[name]
    coordinator_m, pool_m, trainer_m, scorer_m = (after[n] for n in ("coordinator", "pool", "trainer", "scorer"))
    was = before["coordinator"]

    # Requests, by the service that served them.
    assert (
        handled(coordinator_m, "CoordinatorService", "StartRun") - handled(was, "CoordinatorService", "StartRun") == 1
    )
    trainings = handled(trainer_m, "TrainerService", "StartTraining") - handled(was, "TrainerService", "StartTraining")
    assert trainings == 2  # one per round
    assert handled(pool_m, "RunStore", "RecordStep") - handled(was, "RunStore", "RecordStep") >= 2 * 5
    # Rounds, acquisitions (12 seed + 8 selected), labels the oracle revealed, the run's end.
    assert moved(was, coordinator_m, "lesslabels_coordinator_rounds_total") == 1
    assert moved(was, coordinator_m, "lesslabels_coordinator_labels_acquired_total") == 20
    assert moved(was, pool_m, "lesslabels_pool_labels_total", source="seed") == 12
    assert moved(was, pool_m, "lesslabels_pool_labels_total", source="oracle") == 8
    assert moved(was, coordinator_m, "lesslabels_coordinator_runs_ended_total", state="COMPLETED") == 1
    for step in ("SEED", "LABEL", "TRAIN", "EVALUATE", "SCORE", "SELECT"):
        assert moved(was, coordinator_m, "lesslabels_coordinator_step_seconds_count", step=step, outcome="ok") >= 1
    assert moved(was, coordinator_m, "lesslabels_coordinator_step_seconds_count", step="TRAIN", outcome="ok") == 2
    # The trainer: two trainings to a checkpoint, their steps and samples; no training runs now.
    assert moved(was, trainer_m, "lesslabels_trainer_trainings_total") == 2
    assert moved(was, trainer_m, "lesslabels_trainer_steps_total") >= 2
    assert moved(was, trainer_m, "lesslabels_trainer_samples_total") >= 12 + 20
    assert value(trainer_m, "lesslabels_trainer_jobs", state="SUCCEEDED") == 2
    assert value(trainer_m, "lesslabels_trainer_threads") == 0
    # The scorer: every text it ran was in exactly one batch, and nothing waits or is held now.
    texts = moved(was, scorer_m, "lesslabels_scorer_texts_total")
    assert texts >= 28 + 2 * 12  # round 0's unlabelled pool, the test split after each round
    assert moved(was, scorer_m, "lesslabels_scorer_batch_size_sum") == texts
    assert moved(was, scorer_m, "lesslabels_scorer_batch_size_count") >= texts / 256
    assert moved(was, scorer_m, "lesslabels_scorer_model_cache_lookups_total", result="miss") >= 2
    assert value(scorer_m, "lesslabels_scorer_queue_texts") == 0
    assert value(scorer_m, "lesslabels_scorer_inflight_bytes") == 0
    # Nothing is in flight once the run's stream ended.
    assert all(
        v == 0
        for (name, labels), v in after["pool"].items()
        if name == "lesslabels_grpc_server_in_flight"
        and dict(labels)["grpc_service"] != "lesslabels.v1.CoordinatorService"
    )


def test_a_human_run_through_the_web_app_counts_the_wait_and_each_persons_labels(stack, tiny_bert_dir):
    before = scrape(stack.metrics_ports["coordinator"])
    run_id = start_human_run(stack, tiny_bert_dir)
    # The supervisor lists the active runs every few seconds: the run shows as waiting.
    wait_for(
        lambda: (
            value(scrape(stack.metrics_ports["coordinator"]), "lesslabels_coordinator_runs", state="WAITING_FOR_LABELS")
            == 1
        ),
        15,
        0.2,
        "the waiting run in lesslabels_coordinator_runs",
    )
    backend = SdkBackend(Addresses(stack.coordinator_address, stack.pool_address, stack.scorer_address))
    try:
        with TestClient(create_app(backend)) as client:
            headers = {"X-CSRF-Token": csrf_of(client, f"/runs/{run_id}/label")}
            items = client.get(f"/api/runs/{run_id}/queue").json()["items"]
            assert len(items) == 12
            for n, item in enumerate(items):
                who = "e2e-ada" if n < 8 else "e2e-bob"
                body = {
                    "sample_id": item["sample_id"],
                    "label": gold(item["text"]),
                    "annotator": who,
                    "nonce": f"e2e{n:06d}",
                }
                assert client.post(f"/api/runs/{run_id}/labels", json=body, headers=headers).status_code == 200
            # The labelled seed set lets the run go on: it trains, then waits for round 1's batch.
            wait_for(
                lambda: (q := client.get(f"/api/runs/{run_id}/queue").json())["round"] == 1 and q["remaining"] > 0,
                180,
                0.3,
                "the round-1 batch",
            )
    finally:
        backend.close()
    with CoordinatorClient(stack.coordinator_address, timeout=30) as coordinator:
        coordinator.cancel(run_id)
    after = scrape(stack.metrics_ports["coordinator"])
    assert moved(before, after, "lesslabels_web_labels_total", annotator="e2e-ada") == 8
    assert moved(before, after, "lesslabels_web_labels_total", annotator="e2e-bob") == 4
    assert moved(before, after, "lesslabels_web_label_seconds_count") == 10  # 7 gaps of Ada's, 3 of Bob's
    assert moved(before, after, "lesslabels_pool_labels_total", source="human") == 12
    assert moved(before, after, "lesslabels_coordinator_label_wait_seconds_count") == 1  # the seed batch's wait
    assert moved(before, after, "lesslabels_coordinator_label_wait_seconds_sum") > 0
    assert moved(before, after, "lesslabels_coordinator_runs_ended_total", state="CANCELLED") == 1
    assert moved(before, after, "lesslabels_coordinator_labels_acquired_total") == 12 + 8
