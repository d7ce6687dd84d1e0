"""The run state machine over the real pool (gRPC, temp SQLite) with fake trainer and scorer:
rounds, stopping rules, oracle and human labelling, cancel, crash-and-resume at every step."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from lesslabels.common import errors
from lesslabels import contract
from lesslabels.contract import vocabulary
from lesslabels.coordinator import domain
from lesslabels.client import PoolClient
from lesslabels.pool.run_store_client import RunStoreClient
from tests.stack import wait_for, wait_for_state

TRAIN, TEST = 40, 12


def config(**overrides) -> contract.RunConfig:
    base = dict(
        dataset="toy",
        seed_size=contract.Amount(count=8),
        batch_size=contract.Amount(count=6),
        stopping=contract.StoppingRule(max_rounds=3),
        random_seed=7,
    )
    base.update(overrides)
    return contract.RunConfig(**base)


def _assert_no_sample_acquired_twice(pool: RunStoreClient, run_id: int) -> list[contract.Acquisition]:
    acquisitions = pool.list_acquisitions(run_id)
    ids = [a.sample_id for a in acquisitions]
    assert len(ids) == len(set(ids)), "a sample was acquired twice"
    return acquisitions


def test_simulated_run_goes_through_every_round_and_records_each(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config(strategy="margin"))
    assert run.config.strategy == "margin" and run.config.oracle == "simulated"
    done = wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES)
    assert done.state == "COMPLETED", done.error
    assert done.stop_reason == "round limit 3 reached"
    assert done.step == "DONE" and done.round == 2
    assert done.labelled_count == 8 + 6 + 6

    _, rounds = core.get_run(run.id)
    assert [r.index for r in rounds] == [0, 1, 2]
    assert [r.labelled_count for r in rounds] == [8, 14, 20]
    assert [r.selected_count for r in rounds] == [6, 6, 0]
    for r in rounds:
        assert r.checkpoint_id.startswith(f"ckpt-run{run.id}-round{r.index}")
        assert r.test is not None and r.test.count == TEST
        assert r.test.accuracy == fake_stack.scorer.expected_test_accuracy("toy")
        assert set(r.test.per_class_f1) <= {
            "flight",
            "airfare",
            "ground_service",
            "abbreviation",
        }
        assert r.started_at and r.finished_at
    acquisitions = _assert_no_sample_acquired_twice(fake_stack.runs, run.id)
    assert collections.Counter(a.round for a in acquisitions) == {0: 8, 1: 6, 2: 6}
    assert all(a.label for a in acquisitions)
    # One training job per round, each warm-started from nothing (warm_start off), seeded by the run.
    trained = fake_stack.trainer.trained(run.id)
    assert sorted(r.round for r in trained) == [0, 1, 2]
    assert all(r.seed == 7 and r.warm_start_checkpoint == "" for r in trained)
    assert len({r.request_id for r in fake_stack.trainer.requests.values()}) == len(fake_stack.trainer.requests)


def test_each_round_records_its_comparison_with_the_kept_model_and_the_run_keeps_by_them(fake_stack):
    """The trainer's paired comparison of each round's model with the model the run kept travels to
    the run store with the round; the kept round follows them (round 1 collapsed, round 2 won)."""
    kept_then = {}

    def compare(request):
        if request.round == 0:
            return None
        against = kept_then[request.run_id]
        lost = request.round == 1
        return contract.Comparison(against=against, count=20, new_only=0 if lost else 4, kept_only=9 if lost else 1)

    def remember(job_id: str) -> None:
        request = fake_stack.trainer.requests[job_id]
        if request.round != 1:  # round 1 loses: the run keeps round 0's model
            kept_then[request.run_id] = fake_stack.trainer.jobs[job_id].checkpoint_id

    fake_stack.trainer.compare = compare
    wait_job = fake_stack.trainer.wait_job

    def wait_and_remember(job_id, *args, **kw):
        job = wait_job(job_id, *args, **kw)
        remember(job_id)
        return job

    fake_stack.trainer.wait_job = wait_and_remember
    core = fake_stack.coordinator()
    run = core.start_run(config())
    assert wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"
    _, rounds = core.get_run(run.id)
    assert rounds[0].comparison is None
    assert rounds[1].comparison == contract.Comparison(rounds[0].checkpoint_id, 20, 0, 9)
    assert rounds[2].comparison == contract.Comparison(rounds[0].checkpoint_id, 20, 4, 1)
    assert [r.index for r in rounds] == [0, 1, 2] and contract.kept_round(rounds).index == 2
    assert contract.kept_round(rounds[:2]).index == 0


class CountingRunStore:
    """Delegates to a RunStoreClient and counts the calls of each method."""

    def __init__(self, pool: RunStoreClient):
        self._pool = pool
        self.calls: collections.Counter = collections.Counter()

    def __getattr__(self, name):
        target = getattr(self._pool, name)

        def call(*args, **kwargs):
            self.calls[name] += 1
            return target(*args, **kwargs)

        return call


def test_a_worker_reads_the_run_once_and_records_each_step_in_one_call(fake_stack):
    counting = CountingRunStore(fake_stack.runs)
    core = fake_stack.coordinator(runs=counting)
    run = core.start_run(config())
    assert wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"
    wait_for(lambda: not core.active_runs(), what="the worker to end")
    # Read once (configuration decoded once); then each step goes on from RecordStep's reply.
    assert counting.calls["get_run"] == 1
    # PENDING->RUNNING, then SEED, and LABEL/TRAIN/EVALUATE/SCORE/SELECT per round (the last round
    # stops at EVALUATE): 1 + 1 + 5 + 5 + 3.
    assert counting.calls["record_step"] == 15
    assert counting.calls["put_round"] == 3  # only the training job's id, as soon as it is known
    assert set(counting.calls) == {
        "create_run",
        "get_run",
        "record_step",
        "put_round",
        "list_rounds",
        "list_acquisitions",
        "reveal_labels",
    }


def test_margin_selection_takes_the_smallest_margins_of_the_unlabelled_pool(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config(strategy="margin", stopping=contract.StoppingRule(max_rounds=2)))
    wait_for_state(fake_stack.runs, run.id, "COMPLETED")
    _, rounds = core.get_run(run.id)
    pool = fake_stack.runs
    seed_ids = {a.sample_id for a in pool.list_acquisitions(run.id, 0)}
    chosen = [a.sample_id for a in pool.list_acquisitions(run.id, 1)]
    scores = fake_stack.scorer.score_pool(contract.SampleQuery("toy"), checkpoint=rounds[0].checkpoint_id)
    top2 = np.sort(scores.probabilities, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    candidates = [(m, i) for m, i in zip(margin, scores.sample_ids, strict=True) if i not in seed_ids]
    assert chosen == [int(i) for _, i in sorted(candidates)[:6]]


def test_runs_are_deterministic_under_their_random_seed(fake_stack):
    core = fake_stack.coordinator()
    a = core.start_run(config(strategy="random", random_seed=3))
    b = core.start_run(config(strategy="random", random_seed=3))
    c = core.start_run(config(strategy="random", random_seed=4))
    pool = fake_stack.runs
    for run in (a, b, c):
        assert wait_for_state(pool, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"

    def picks(run):
        return [(x.round, x.sample_id) for x in pool.list_acquisitions(run.id)]

    assert picks(a) == picks(b)
    assert picks(a) != picks(c)


def test_warm_start_passes_the_previous_checkpoint(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config(warm_start=True, stopping=contract.StoppingRule(max_rounds=2)))
    wait_for_state(fake_stack.runs, run.id, "COMPLETED")
    _, rounds = core.get_run(run.id)
    trained = sorted(fake_stack.trainer.trained(run.id), key=lambda r: r.round)
    assert trained[0].warm_start_checkpoint == ""
    assert trained[1].warm_start_checkpoint == rounds[0].checkpoint_id


@pytest.mark.parametrize(
    "stopping, reason, rounds",
    [
        (contract.StoppingRule(label_budget=contract.Amount(count=17)), "label budget 17 reached (17 labelled)", 3),
        (contract.StoppingRule(label_budget=contract.Amount(fraction=0.5)), "label budget 20 reached (20 labelled)", 3),
        (contract.StoppingRule(target_accuracy=0.5), "target accuracy 0.5 reached", 1),
        (contract.StoppingRule(stable_agreement=0.99), "predictions stable: 1.0000 of the pool unchanged", 2),
    ],
)
def test_stopping_rules(fake_stack, stopping, reason, rounds):
    fake_stack.scorer.stable = True  # same pool predictions every round: agreement 1
    core = fake_stack.coordinator()
    run = core.start_run(config(stopping=stopping))
    done = wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES)
    assert done.state == "COMPLETED", done.error
    assert done.stop_reason.startswith(reason)
    _, recorded = core.get_run(run.id)
    assert len(recorded) == rounds
    if stopping.label_budget is not None:
        assert done.labelled_count == stopping.label_budget.resolve(TRAIN)  # the last batch was cut to fit


def test_defaults_are_filled_in_and_stored(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(contract.RunConfig(dataset="toy"))
    stored = fake_stack.runs.get_run(run.id).config
    assert stored.strategy == "entropy" and stored.seed_strategy == "random" and stored.oracle == "simulated"
    assert stored.seed_size == contract.Amount(fraction=0.05) and stored.batch_size == contract.Amount(fraction=0.10)
    assert stored.stopping.max_rounds == 5
    done = wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES)
    assert done.state == "COMPLETED"
    # 5% of 40 = 2 seed samples, then +4 per round, for 5 rounds.
    assert done.labelled_count == 2 + 4 * 4


def test_diverse_seed_embeds_the_pool_with_the_base_model(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(
        config(seed_strategy="diverse", strategy="clustered_entropy", stopping=contract.StoppingRule(max_rounds=2))
    )
    assert wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"
    first = fake_stack.scorer.calls[0]
    assert first["base_model"] == "default" and first["embeddings"] and first["split"] == "train"
    assert any(c["embeddings"] and c["checkpoint_id"] for c in fake_stack.scorer.calls)
    assert len(_assert_no_sample_acquired_twice(fake_stack.runs, run.id)) == 8 + 6


def test_several_runs_progress_concurrently(fake_stack):
    fake_stack.trainer.hold.clear()
    core = fake_stack.coordinator()
    runs = [core.start_run(config(random_seed=i)) for i in range(3)]
    wait_for(lambda: len(fake_stack.trainer.requests) >= 3, what="three jobs in flight at once")
    assert sorted(r.run_id for r in fake_stack.trainer.requests.values()) == sorted(r.id for r in runs)
    fake_stack.trainer.hold.set()
    for run in runs:
        assert wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"


def test_cancel_stops_a_training_run_and_cancels_its_job(fake_stack):
    fake_stack.trainer.hold.clear()
    core = fake_stack.coordinator()
    run = core.start_run(config())
    wait_for(fake_stack.trainer.started.is_set, what="training to start")
    cancelled = core.cancel_run(run.id)
    assert cancelled.state == "CANCELLED"
    assert fake_stack.trainer.cancelled == ["job-1"]
    wait_for(lambda: not core.active_runs(), what="the worker to stop")
    fake_stack.trainer.hold.set()
    after = fake_stack.runs.get_run(run.id)
    assert after.state == "CANCELLED" and after.step == "TRAIN"
    assert core.cancel_run(run.id).state == "CANCELLED"  # cancelling twice is harmless


def test_cancelled_run_can_be_resumed_to_completion(fake_stack):
    fake_stack.trainer.hold.clear()
    core = fake_stack.coordinator()
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=2)))
    wait_for(fake_stack.trainer.started.is_set, what="training to start")
    assert core.cancel_run(run.id).stop_reason == "cancelled by a user"
    # Resumed at once, while the cancelled worker may still be on its way out.
    resumed = core.resume_run(run.id)
    assert (resumed.state, resumed.stop_reason) == ("RUNNING", "")
    fake_stack.trainer.hold.set()
    assert wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"
    with pytest.raises(errors.FailedPrecondition, match="completed"):
        core.resume_run(run.id)


def test_unknown_runs_and_datasets_are_not_found(fake_stack):
    core = fake_stack.coordinator()
    with pytest.raises(errors.NotFound):
        core.start_run(config(dataset="nope"))
    for call in (core.cancel_run, core.resume_run, core.pending_labels, core.get_run):
        with pytest.raises(errors.NotFound):
            call(999)


def test_a_job_lost_by_the_trainer_is_started_again(fake_stack):
    core = fake_stack.coordinator()
    fake_stack.trainer.lose("run-1-round-0-attempt-0")  # the trainer restarted while training it
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=1)))
    assert run.id == 1
    assert wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"
    keys = sorted(r.request_id for r in fake_stack.trainer.requests.values())
    assert keys == ["run-1-round-0-attempt-0", "run-1-round-0-attempt-1"]
    assert len(fake_stack.trainer.trained(run.id)) == 1


def test_a_round_lost_every_time_fails_the_run_and_a_resume_trains_it(fake_stack):
    """A trainer that restarts under every job: the round gives up after MAX_TRAIN_ATTEMPTS jobs
    lost while watched, and the outage window fails the run, naming it, without starting more.
    Once the trainer holds,
    a resume trains the round on a new key: the lost attempts' keys stay INTERRUPTED in the
    trainer, so reusing them would fail every resume."""
    from lesslabels.coordinator.steps import MAX_TRAIN_ATTEMPTS

    core = fake_stack.coordinator()
    fake_stack.trainer.interrupts = 10**6
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=1)))
    failed = wait_for_state(fake_stack.runs, run.id, "FAILED")
    assert f"training of round 0 was interrupted {MAX_TRAIN_ATTEMPTS} times" in failed.error
    assert failed.step == "TRAIN" and fake_stack.trainer.trained(run.id) == []
    # The outage retries started no further training: MAX_TRAIN_ATTEMPTS jobs in all.
    lost = len(fake_stack.trainer.requests)
    assert lost == MAX_TRAIN_ATTEMPTS

    fake_stack.trainer.interrupts = 0
    core.resume_run(run.id)
    assert wait_for_state(fake_stack.runs, run.id, "COMPLETED").error == ""
    trained = fake_stack.trainer.trained(run.id)
    assert [r.request_id for r in trained] == [f"run-1-round-0-attempt-{lost}"]


def test_a_trainer_answering_only_ended_jobs_fails_the_run(fake_stack, monkeypatch):
    """Keys whose jobs already ended are skipped, but not forever: past MAX_TRAIN_KEYS the run fails."""
    from lesslabels.coordinator import steps

    monkeypatch.setattr(steps, "MAX_TRAIN_KEYS", 5)
    for attempt in range(10):
        fake_stack.trainer.lose(f"run-1-round-0-attempt-{attempt}")
    core = fake_stack.coordinator()
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=1)))
    failed = wait_for_state(fake_stack.runs, run.id, "FAILED")
    assert "the trainer answered 5 training requests with ended jobs" in failed.error
    assert len(fake_stack.trainer.requests) == 5


def test_a_failed_training_job_fails_the_run_with_its_reason(fake_stack):
    core = fake_stack.coordinator()
    trainer = fake_stack.trainer
    original = trainer.wait_job

    def failing(job_id, progress=None, should_stop=lambda: False):
        trainer.jobs[job_id] = domain.JobInfo(job_id, "FAILED", error="too few labels for 4 classes")
        return trainer.jobs[job_id]

    trainer.wait_job = failing
    run = core.start_run(config())
    failed = wait_for_state(fake_stack.runs, run.id, "FAILED")
    assert "too few labels for 4 classes" in failed.error and failed.step == "TRAIN"
    trainer.wait_job = original
    core.resume_run(run.id)
    assert wait_for_state(fake_stack.runs, run.id, "COMPLETED").error == ""


# ---------------------------------------------------------------- crash anywhere, resume, nothing twice


class _Crash(BaseException):
    """Kills the worker thread on the spot, like a killed process (no cleanup, no FAILED state)."""


class CrashingPool:
    """Delegates to a RunStoreClient and dies once, right *after* the n-th matching write went through
    (or right before it, with ``before=True``: the write never reaches the pool)."""

    def __init__(self, pool: RunStoreClient, method: str, nth: int = 1, *, before: bool = False, **match):
        self._pool, self._method, self._nth, self._before, self._match = pool, method, nth, before, match
        self.crashed = False

    def __getattr__(self, name):
        target = getattr(self._pool, name)
        if name != self._method:
            return target

        def call(*args, **kwargs):
            hit = not self.crashed and all(kwargs.get(k) == v for k, v in self._match.items())
            if hit and self._before and self._nth == 1:
                self.crashed = True
                raise _Crash()
            result = target(*args, **kwargs)
            if hit:
                self._nth -= 1
                if self._nth == 0:
                    self.crashed = True
                    raise _Crash()
            return result

        return call


# Every write of a run, killed just after it (and the steps' one transaction, killed just before it).
CRASH_POINTS = [
    pytest.param("record_step", 1, {"step": "LABEL", "before": True}, id="before-recording-the-seed-set"),
    pytest.param("record_step", 1, {"step": "LABEL"}, id="after-seed-step"),
    pytest.param("reveal_labels", 1, {}, id="after-revealing-seed-labels"),
    pytest.param("put_round", 1, {}, id="after-recording-the-train-job"),
    pytest.param("record_step", 1, {"step": "EVALUATE"}, id="after-training"),
    pytest.param("record_step", 1, {"step": "SCORE"}, id="after-evaluating"),
    pytest.param("record_step", 2, {"step": "LABEL", "before": True}, id="before-recording-a-selection"),
    pytest.param("record_step", 1, {"step": "SELECT"}, id="between-score-and-select"),
    pytest.param("record_step", 2, {"step": "LABEL"}, id="after-select-step"),
    pytest.param("reveal_labels", 2, {}, id="after-revealing-oracle-labels"),
    pytest.param("record_step", 2, {"step": "TRAIN"}, id="before-second-training"),
]


@pytest.mark.parametrize("method, nth, match", CRASH_POINTS)
@pytest.mark.parametrize("strategy", ["entropy", "random"])
def test_killed_coordinator_resumes_and_selects_nothing_twice(fake_stack, method, nth, match, strategy):
    # Reference: the same run, never interrupted.
    reference = fake_stack.coordinator()
    ref_run = reference.start_run(config(strategy=strategy))
    wait_for_state(fake_stack.runs, ref_run.id, "COMPLETED")
    expected = [(a.round, a.sample_id) for a in fake_stack.runs.list_acquisitions(ref_run.id)]
    reference.close()

    crashing = CrashingPool(fake_stack.runs, method, nth, **match)
    first = fake_stack.coordinator(runs=crashing)
    run = first.start_run(config(strategy=strategy))
    wait_for(lambda: crashing.crashed and not first.active_runs(), what="the coordinator to die")
    first.close()
    stuck = fake_stack.runs.get_run(run.id)
    assert stuck.state == "RUNNING"  # killed mid-run, not failed

    second = fake_stack.coordinator()
    assert second.recover() == [run.id]
    done = wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES)
    assert done.state == "COMPLETED", done.error
    got = [(a.round, a.sample_id) for a in _assert_no_sample_acquired_twice(fake_stack.runs, run.id)]
    # The same selections as the uninterrupted run: nothing re-selected differently or twice.
    assert got == expected
    assert done.labelled_count == 20
    trained_rounds = sorted(r.round for r in fake_stack.trainer.trained(run.id))
    assert trained_rounds == [0, 1, 2], "a round was trained twice or not at all"
    _, rounds = second.get_run(run.id)
    assert [r.index for r in rounds] == [0, 1, 2] and all(r.test is not None for r in rounds)


def test_a_stopped_coordinator_leaves_training_running_and_the_next_reuses_the_job(fake_stack):
    fake_stack.trainer.hold.clear()
    first = fake_stack.coordinator()
    run = first.start_run(config(stopping=contract.StoppingRule(max_rounds=1)))
    wait_for(fake_stack.trainer.started.is_set, what="training to start")
    first.close()
    assert fake_stack.runs.get_run(run.id).state == "RUNNING"
    second = fake_stack.coordinator()
    second.recover()
    fake_stack.trainer.hold.set()
    assert wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"
    assert len(fake_stack.trainer.requests) == 1  # StartTraining's idempotency key returned the same job


# ---------------------------------------------------------------- human labelling


def _gold(stack, sample_ids):
    """The toy dataset's label is the first word(s) of the text."""
    pool = stack.runs
    texts = {a.sample_id: a.text for a in pool.list_acquisitions(1)}
    out = []
    for i in sample_ids:
        text = texts[i]
        out.append(
            next(
                name
                for name in ("flight", "airfare", "ground_service", "abbreviation")
                if text.startswith(name.replace("_", " "))
            )
        )
    return out


def test_labels_for_a_cancelled_run_are_refused_until_it_is_resumed(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config(oracle="human", asynchronous=False, stopping=contract.StoppingRule(max_rounds=2)))
    pool = fake_stack.runs
    wait_for_state(pool, run.id, "WAITING_FOR_LABELS")
    ids = [s.sample_id for s in core.pending_labels(run.id).samples]
    labels = list(zip(ids, _gold(fake_stack, ids), strict=True))
    core.cancel_run(run.id)
    with pytest.raises(errors.FailedPrecondition, match=rf"run {run.id} is cancelled: resume it first"):
        core.submit_labels(run.id, labels[:2])
    assert core.pending_labels(run.id).remaining == len(ids)  # nothing recorded
    core.resume_run(run.id)
    result, _ = core.submit_labels(run.id, labels[:2])
    assert result.recorded == 2
    core.cancel_run(run.id)


def test_human_mode_waits_for_the_batch_and_accepts_partial_and_repeated_labels(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config(oracle="human", asynchronous=False, stopping=contract.StoppingRule(max_rounds=2)))
    pool = fake_stack.runs
    waiting = wait_for_state(pool, run.id, "WAITING_FOR_LABELS")
    assert waiting.step == "LABEL" and waiting.round == 0
    batch = core.pending_labels(run.id)
    assert batch.round == 0 and batch.remaining == 8 and len(batch.samples) == 8
    assert set(batch.labels) == {"flight", "airfare", "ground_service", "abbreviation"}
    ids = [s.sample_id for s in batch.samples]
    labels = list(zip(ids, _gold(fake_stack, ids), strict=True))

    result, remaining = core.submit_labels(run.id, labels[:3], annotator="ann", idempotency_key="k1")
    assert (result.recorded, remaining) == (3, 5)
    result, remaining = core.submit_labels(run.id, labels[:3], annotator="ann", idempotency_key="k1")
    assert (result.recorded, remaining) == (0, 5)  # a retried submission changes nothing
    result, remaining = core.submit_labels(run.id, labels[1:5], annotator="ann")
    assert (result.recorded, result.unchanged, remaining) == (2, 2, 3)
    assert core.pending_labels(run.id).remaining == 3
    assert pool.get_run(run.id).state == "WAITING_FOR_LABELS"
    assert not fake_stack.trainer.requests, "trained before the batch was complete"

    _, remaining = core.submit_labels(run.id, labels[5:])
    assert remaining == 0
    # The run trains round 0, selects a batch of 6 and waits again.
    wait_for(
        lambda: core.pending_labels(run.id).round == 1 and pool.get_run(run.id).state == "WAITING_FOR_LABELS",
        what="the round 1 batch",
    )
    assert core.pending_labels(run.id).remaining == 6
    # Repeating the round-0 labels now that the run moved on is harmless...
    result, _ = core.submit_labels(run.id, labels[:2])
    assert result.unchanged == 2
    # ...but changing a label of the trained batch, or labelling a sample never selected, is refused.
    changed = next(label for label in batch.labels if label != dict(labels)[ids[0]])
    with pytest.raises(errors.InvalidArgument, match="not in the pending batch"):
        core.submit_labels(run.id, [(ids[0], changed)])
    acquired = {a.sample_id for a in pool.list_acquisitions(run.id)}
    with PoolClient(fake_stack.pool_address, timeout=10) as samples:
        never = next(s.id for s in samples.list_samples("toy", page_size=5000) if s.id not in acquired)
    with pytest.raises(errors.InvalidArgument, match=rf"samples \[{never}\] are not in the pending batch"):
        core.submit_labels(run.id, [(never, "flight")])
    assert core.pending_labels(run.id).remaining == 6
    second = [s.sample_id for s in core.pending_labels(run.id).samples]
    core.submit_labels(run.id, list(zip(second, ["flight"] * len(second), strict=True)))
    done = wait_for_state(pool, run.id, vocabulary.FINAL_RUN_STATES)
    assert done.state == "COMPLETED" and done.labelled_count == 14
    _assert_no_sample_acquired_twice(pool, run.id)


def test_human_labels_are_refused_for_simulated_runs_and_unknown_labels(fake_stack):
    core = fake_stack.coordinator()
    sim = core.start_run(config())
    with pytest.raises(errors.FailedPrecondition, match="simulated oracle"):
        core.submit_labels(sim.id, [(1, "flight")])
    human = core.start_run(config(oracle="human"))
    wait_for_state(fake_stack.runs, human.id, "WAITING_FOR_LABELS")
    sample = core.pending_labels(human.id).samples[0].sample_id
    with pytest.raises(errors.InvalidArgument):
        core.submit_labels(human.id, [(sample, "not-a-label")])
    with pytest.raises(errors.InvalidArgument, match="no labels"):
        core.submit_labels(human.id, [])


def test_a_restarted_coordinator_continues_a_human_run_once_labels_arrive(fake_stack):
    first = fake_stack.coordinator()
    run = first.start_run(config(oracle="human", asynchronous=False, stopping=contract.StoppingRule(max_rounds=1)))
    wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")
    first.close()
    second = fake_stack.coordinator()
    assert second.recover() == [run.id]
    batch = second.pending_labels(run.id)
    ids = [s.sample_id for s in batch.samples]
    _, remaining = second.submit_labels(run.id, list(zip(ids, _gold(fake_stack, ids), strict=True)))
    assert remaining == 0
    assert wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"


# ---------------------------------------------------------------- watching


def test_watch_streams_events_until_the_run_ends(fake_stack):
    fake_stack.trainer.hold.clear()
    core = fake_stack.coordinator()
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=2)))
    stream = core.watch(run.id)
    first = next(stream)
    assert first.run.state in ("PENDING", "RUNNING")
    fake_stack.trainer.hold.set()
    events = [first] + list(stream)
    assert events[-1].run.state == "COMPLETED" and events[-1].run.stop_reason == "round limit 2 reached"
    messages = " | ".join(e.message for e in events)
    assert "round 1: test accuracy" in messages and "round 0: training on 8 labels" in messages
    assert {e.round.index for e in events if e.round is not None} == {0, 1}


# ---------------------------------------------------------------- dependencies going away


def test_an_unavailable_scorer_is_retried_then_fails_the_run_with_a_clear_error(fake_stack):
    scorer = fake_stack.scorer
    real = scorer.score_pool
    outages = {"left": 2}

    def flaky(samples, **kwargs):
        if outages["left"] > 0:
            outages["left"] -= 1
            raise errors.Unavailable("scorer at 127.0.0.1:9 unreachable")
        return real(samples, **kwargs)

    scorer.score_pool = flaky
    core = fake_stack.coordinator()
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=2)))
    assert (
        wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES).state == "COMPLETED"
    )  # two outages ridden out

    outages["left"] = 10**6  # now it never comes back
    second = core.start_run(config(stopping=contract.StoppingRule(max_rounds=2)))
    failed = wait_for_state(fake_stack.runs, second.id, vocabulary.FINAL_RUN_STATES)
    assert failed.state == "FAILED" and failed.step == "EVALUATE"
    assert "scorer at 127.0.0.1:9 unreachable" in failed.error
    outages["left"] = 0
    core.resume_run(second.id)
    assert wait_for_state(fake_stack.runs, second.id, "COMPLETED").error == ""
