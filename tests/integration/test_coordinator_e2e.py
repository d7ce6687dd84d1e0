"""End to end over the real in-process services (pool, trainer, scorer, coordinator) with the
tiny random BERT: a two-round run, a coordinator stopped between steps and resumed, human mode.
Driven through the client SDK, as a user would; the trainer (no SDK client) through its stub."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import time

import grpc
import pytest

import numpy as np

from lesslabels.client import errors
from lesslabels.client import Amount, CoordinatorClient, PoolClient, RunConfig, SampleQuery, ScorerClient, StoppingRule
from lesslabels.contract.vocabulary import FINAL_RUN_STATES as FINAL_STATES
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.contract.vocabulary import RUN_STEPS as STEPS
from lesslabels.v1 import trainer_pb2, trainer_pb2_grpc
from tests.stack import load_toy_dataset, wait_for


def _config(tiny_bert_dir, **overrides) -> RunConfig:
    return RunConfig(
        dataset="toy",
        base_model=str(tiny_bert_dir),
        random_seed=3,
        seed_size=Amount(count=12),
        batch_size=Amount(count=8),
        stopping=StoppingRule(max_rounds=2),
        hyperparameters={"max_epochs": 2, "batch_size": 8, "max_length": 16, "num_threads": 1, "learning_rate": 1e-3},
        **overrides,
    )


class Clients:
    def __init__(self, stack):
        self.pool = PoolClient(stack.pool_address, timeout=10)
        self.runs = RunStoreClient(stack.pool_address, timeout=10)  # the run records, as the coordinator reads them
        self.scorer = ScorerClient(stack.scorer_address, timeout=60)
        self._trainer_channel = grpc.insecure_channel(stack.trainer_address)
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(self._trainer_channel)
        self.coordinator = None
        self.connect(stack)

    def connect(self, stack):
        if self.coordinator is not None:
            self.coordinator.close()
        self.coordinator = CoordinatorClient(stack.coordinator_address, timeout=30)

    def close(self):
        self.pool.close()
        self.runs.close()
        self.scorer.close()
        self.coordinator.close()
        self._trainer_channel.close()

    def run(self, run_id):
        return self.runs.get_run(run_id)

    def wait_final(self, run_id, timeout=240):
        return wait_for(
            lambda: (r := self.run(run_id)).state in FINAL_STATES and r, timeout, 0.2, f"run {run_id} to end"
        )

    def acquisitions(self, run_id):
        return self.runs.list_acquisitions(run_id)

    def jobs(self, run_id):
        return list(self.trainer.ListJobs(trainer_pb2.ListJobsRequest(run_id=run_id), timeout=10).jobs)


@pytest.fixture
def clients(real_stack):
    load_toy_dataset(real_stack.pool_address)
    clients = Clients(real_stack)
    yield clients
    clients.close()


def _assert_recorded_once(clients, run_id, rounds: int, labelled: int):
    acquisitions = clients.acquisitions(run_id)
    ids = [a.sample_id for a in acquisitions]
    assert len(ids) == len(set(ids)), "a sample was acquired twice"
    assert len(ids) == labelled and all(a.label for a in acquisitions)
    succeeded = [j for j in clients.jobs(run_id) if j.state == trainer_pb2.JOB_STATE_SUCCEEDED]
    assert sorted(j.request.round for j in succeeded) == list(range(rounds)), "a round was trained twice"
    return acquisitions


def test_two_round_run_over_the_real_services(clients, tiny_bert_dir):
    config = _config(tiny_bert_dir, seed_strategy="diverse", strategy="clustered_entropy")
    run = clients.coordinator.start_run(config)
    events = list(clients.coordinator.watch(run.id))
    assert events[-1].run.state == "COMPLETED", events[-1].run.error
    done = clients.run(run.id)
    assert done.stop_reason == "round limit 2 reached" and done.labelled_count == 20
    detail = clients.coordinator.get_run(run.id)
    assert [r.index for r in detail.rounds] == [0, 1]
    assert [r.labelled_count for r in detail.rounds] == [12, 20]
    assert detail.rounds[0].selected_count == 8
    for r in detail.rounds:
        assert r.checkpoint_id and r.train_job_id
        # The round's accuracy is its checkpoint's on the test split, as the scorer scores it now.
        test = clients.scorer.score_pool(
            SampleQuery(config.dataset, split="test", include_all=True), checkpoint=r.checkpoint_id
        )
        assert r.test.count == 12 and r.test.per_class_f1
        assert r.test.accuracy == pytest.approx(float(np.mean(test.predicted == test.gold)))
        assert r.train_seconds > 0
    assert 0 <= detail.rounds[0].agreement <= 1
    acquisitions = _assert_recorded_once(clients, run.id, rounds=2, labelled=20)
    assert collections.Counter(a.round for a in acquisitions) == {0: 12, 1: 8}
    # The checkpoints are the trainer's, trained on this run's labels.
    manifest = clients.trainer.GetCheckpoint(trainer_pb2.GetCheckpointRequest(latest_of_run=run.id), timeout=10)
    assert manifest.id == detail.rounds[1].checkpoint_id and manifest.round == 1
    assert any("training" in e.message for e in events)


def test_a_coordinator_stopped_between_steps_resumes_without_selecting_twice(clients, real_stack, tiny_bert_dir):
    run = clients.coordinator.start_run(_config(tiny_bert_dir))
    seen = []
    # Stop the coordinator at three points of the run, each time starting a fresh one that resumes it.
    for step, round_index in (("TRAIN", 0), ("SCORE", 0), ("LABEL", 1)):
        current = wait_for(
            lambda round_index=round_index, step=step: (
                (r := clients.run(run.id)).state in FINAL_STATES
                or (r.round, STEPS.index(r.step)) >= (round_index, STEPS.index(step))
                and r
            ),
            240,
            0.05,
            f"step {step} of round {round_index}",
        )
        assert current.state not in FINAL_STATES, "the run ended before the coordinator could be stopped"
        seen.append((current.round, current.step))
        real_stack.restart_coordinator()
        clients.connect(real_stack)
    done = clients.wait_final(run.id)
    assert done.state == "COMPLETED", (done.error, seen)
    _assert_recorded_once(clients, run.id, rounds=2, labelled=20)
    detail = clients.coordinator.get_run(run.id)
    assert [r.index for r in detail.rounds] == [0, 1] and all(r.test.count == 12 for r in detail.rounds)


def test_human_mode_with_partial_and_repeated_label_submissions(clients, real_stack, tiny_bert_dir):
    run = clients.coordinator.start_run(_config(tiny_bert_dir, oracle="human", asynchronous=False))

    def pending():
        return clients.coordinator.pending_labels(run.id)

    def submit(samples, label_of, key=""):
        labels = {s.sample_id: label_of(s.text) for s in samples}
        return clients.coordinator.submit_labels(run.id, labels, annotator="t", idempotency_key=key)

    def truth(text):  # the toy texts start with their label
        return next(
            label
            for label in ("flight", "airfare", "ground_service", "abbreviation")
            if text.startswith(label.replace("_", " "))
        )

    batch = wait_for(lambda: (p := pending()).remaining and p, 60, 0.1, "the seed batch")
    assert clients.run(run.id).state == "WAITING_FOR_LABELS"
    assert batch.round == 0 and batch.remaining == 12
    samples = list(batch.samples)
    assert submit(samples[:5], truth, key="part-1").remaining == 7
    assert submit(samples[:5], truth, key="part-1").result.recorded == 0  # the same import again
    again = submit(samples[3:8], truth)  # overlapping, without a key
    assert (again.result.recorded, again.result.unchanged, again.remaining) == (3, 2, 4)
    assert clients.run(run.id).state == "WAITING_FOR_LABELS"
    assert not clients.jobs(run.id), "training started before the batch was complete"
    # The coordinator restarts while the batch is half done; the labels so far are kept.
    real_stack.restart_coordinator()
    clients.connect(real_stack)
    assert pending().remaining == 4
    assert submit(samples[8:], truth).remaining == 0
    second = wait_for(lambda: (p := pending()).round == 1 and p.remaining and p, 240, 0.2, "the round 1 batch")
    assert second.remaining == 8
    submit(list(second.samples), truth)
    submit(list(second.samples), truth)  # a repeat after the batch completed is harmless
    done = clients.wait_final(run.id)
    assert done.state == "COMPLETED", done.error
    acquisitions = _assert_recorded_once(clients, run.id, rounds=2, labelled=20)
    assert all(a.label == truth(a.text) for a in acquisitions)


def test_an_asynchronous_human_run_over_the_real_services(clients, tiny_bert_dir):
    """Two people label from the queue while the real trainer fine-tunes in the background; the
    queue is refilled by the real scorer's fast head (cached embeddings, a logistic regression on
    the run's labels), nobody gets a text another holds, nothing is asked or stored twice."""
    run = clients.coordinator.start_run(_config(tiny_bert_dir, oracle="human", refill_every=4))
    assert run.config.is_asynchronous

    def truth(text):  # the toy texts start with their label
        return next(
            label
            for label in ("flight", "airfare", "ground_service", "abbreviation")
            if text.startswith(label.replace("_", " "))
        )

    queued_while_training = 0
    deadline = time.monotonic() + 240
    while clients.run(run.id).state not in ("COMPLETED", "FAILED", "CANCELLED"):
        assert time.monotonic() < deadline, "the run did not end"
        alice = clients.coordinator.pending_labels(run.id, annotator="alice").samples
        bob = clients.coordinator.pending_labels(run.id, annotator="bob").samples
        assert {s.sample_id for s in alice}.isdisjoint(s.sample_id for s in bob)
        if clients.run(run.id).step == "TRAIN" and alice:
            queued_while_training += 1
        for who, samples in (("alice", alice[:2]), ("bob", bob[:2])):
            if samples:
                with contextlib.suppress(errors.InvalidArgument):  # the run may end in between
                    clients.coordinator.submit_labels(
                        run.id, {s.sample_id: truth(s.text) for s in samples}, annotator=who
                    )
        if not alice and not bob:
            time.sleep(0.2)
    done = clients.wait_final(run.id)
    assert done.state == "COMPLETED", done.error
    detail = clients.coordinator.get_run(run.id)
    assert [r.index for r in detail.rounds] == [0, 1], (
        detail.run.stop_reason,
        [(r.index, r.labelled_count, r.checkpoint_id) for r in detail.rounds],
    )
    assert (
        detail.rounds[0].labelled_count >= 12 and detail.rounds[1].labelled_count >= detail.rounds[0].labelled_count + 8
    )
    acquisitions = clients.runs.list_acquisitions(run.id)
    assert len({a.sample_id for a in acquisitions}) == len(acquisitions)
    # Refills ranked by the fast head's entropy once two classes were labelled.
    assert any(a.strategy == "entropy" for a in acquisitions)
    assert all(a.label == truth(a.text) for a in acquisitions if a.label)
    assert queued_while_training > 0, "the queue was empty while the model trained"


class _ScoredSamples:
    """Wraps the scorer's pool reader to record, per ScorePool call, the samples the scorer received
    from the pool; can hold the first call of a run's training pool until ``release`` is set."""

    def __init__(self, real, hold_first: bool = False):
        self._real = real
        self.calls: list[dict] = []
        self.held = threading.Event()
        self.release = threading.Event()
        self._hold = hold_first

    def __call__(self, pool, query, **kwargs):
        call = dict(split=query.split, run_id=query.run_id, subset=query.subset, ids=[])
        self.calls.append(call)
        pages = list(self._real(pool, query, **kwargs))
        for page in pages:
            call["ids"].extend(page.sample_ids)
        if self._hold and call["split"] == "train" and call["subset"]:
            self._hold = False
            self.held.set()
            self.release.wait(60)
        yield from pages


def test_candidates_score_exactly_n_unlabelled_samples_and_a_restart_scores_the_same(
    real_stack, tiny_bert_dir, monkeypatch
):
    from lesslabels.scorer import servicer

    load_toy_dataset(real_stack.pool_address, "big", train=300, test=12)
    scored = _ScoredSamples(servicer.iter_pool_pages, hold_first=True)
    monkeypatch.setattr(servicer, "iter_pool_pages", scored)
    clients = Clients(real_stack)
    try:
        config = dataclasses.replace(_config(tiny_bert_dir, strategy="entropy"), dataset="big", candidates=50)
        run = clients.coordinator.start_run(config)
        assert scored.held.wait(120), "round 0 never scored its candidates"
        # The coordinator goes away while the scorer streams round 0's candidates; a fresh one resumes.
        real_stack.restart_coordinator()
        scored.release.set()
        clients.connect(real_stack)
        done = clients.wait_final(run.id)
        assert done.state == "COMPLETED", done.error
        acquisitions = _assert_recorded_once(clients, run.id, rounds=2, labelled=20)
    finally:
        scored.release.set()
        clients.close()
    train_calls = [c for c in scored.calls if c["split"] == "train" and c["run_id"] == run.id]
    assert all(c["subset"] == 50 and len(c["ids"]) == 50 for c in train_calls), [len(c["ids"]) for c in train_calls]
    seed_set = {a.sample_id for a in acquisitions if a.round == 0}
    first, *again = [c["ids"] for c in train_calls]
    assert again and all(ids == first for ids in again), "the restarted round scored another subset"
    assert not set(first) & seed_set, "a labelled sample was scored as a candidate"
    assert {a.sample_id for a in acquisitions if a.round == 1} <= set(first)
