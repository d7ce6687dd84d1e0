"""Asynchronous runs over the real pool with fake trainer and scorer: the queue people label from
never runs dry, it is refilled from the fast head every few labels, fine-tunes start in the
background and take over the ranking, nobody gets a text another holds, nothing is asked twice, and
a simulated annotator drives the same mode for benchmarks (issue 23, item 2)."""

from __future__ import annotations

import threading

import pytest

from lesslabels import contract
from lesslabels.client import PoolClient
from lesslabels.common import errors
from lesslabels.contract import vocabulary, wire
from lesslabels.coordinator import queue as queue_module
from tests.stack import wait_for, wait_for_state


def config(**overrides) -> contract.RunConfig:
    base = dict(
        dataset="toy",
        oracle="human",
        seed_size=contract.Amount(count=8),
        batch_size=contract.Amount(count=6),
        stopping=contract.StoppingRule(max_rounds=3),
        random_seed=7,
        refill_every=3,
    )
    base.update(overrides)
    return contract.RunConfig(**base)


def _gold(fake_stack, ids) -> list[str]:
    """The toy dataset's label is the first word(s) of the text."""
    with PoolClient(fake_stack.pool_address, timeout=10) as pool:
        texts = {s.id: s.text for s in pool.list_samples("toy", page_size=5000)}
    names = ("flight", "airfare", "ground_service", "abbreviation")
    return [next(n for n in names if texts[i].startswith(n.replace("_", " "))) for i in ids]


def _label(core, fake_stack, run_id: int, annotator: str, n: int) -> list[int]:
    """The annotator takes their queue and labels ``n`` texts of it (gold labels)."""
    queued = [s.sample_id for s in core.pending_labels(run_id, annotator).samples][:n]
    if not queued:
        return []
    core.submit_labels(run_id, list(zip(queued, _gold(fake_stack, queued), strict=True)), annotator=annotator)
    return queued


def _label_until_done(core, fake_stack, run_id: int, annotator: str) -> contract.Run:
    """Label the queue 3 texts at a time until the run ends (labels in flight when it ends are refused)."""
    runs = fake_stack.runs
    for _ in range(60):
        if runs.get_run(run_id).state in vocabulary.FINAL_RUN_STATES:
            break
        try:
            labelled = _label(core, fake_stack, run_id, annotator, 3)
        except errors.InvalidArgument:
            assert runs.get_run(run_id).state in vocabulary.FINAL_RUN_STATES
            break
        if not labelled:
            wait_for(
                lambda: (
                    core.pending_labels(run_id, annotator).samples
                    or runs.get_run(run_id).state in vocabulary.FINAL_RUN_STATES
                ),
                what="the queue to refill",
            )
    return wait_for_state(runs, run_id, vocabulary.FINAL_RUN_STATES)


def _no_sample_acquired_twice(fake_stack, run_id: int) -> list[contract.Acquisition]:
    acquisitions = fake_stack.runs.list_acquisitions(run_id)
    ids = [a.sample_id for a in acquisitions]
    assert len(ids) == len(set(ids)), "a sample was acquired twice"
    return acquisitions


def test_human_runs_are_asynchronous_by_default_and_old_stored_runs_stay_synchronous():
    assert config().with_defaults().is_asynchronous and config().with_defaults().refill_every == 3
    assert contract.RunConfig("toy", oracle="human").with_defaults().refill_every == contract.DEFAULT_REFILL_EVERY
    assert not contract.RunConfig("toy").with_defaults().is_asynchronous  # simulated: synchronous
    # Without the field (a run stored before it existed) the default applies; migration 0011 writes
    # "asynchronous": false into every run stored before (tests/project/test_foundation.py).
    stored = wire.run_config_to_json(contract.RunConfig("toy", oracle="human"))
    assert '"asynchronous"' not in stored and wire.run_config_from_json(stored).asynchronous is None
    fresh = config().with_defaults()
    assert wire.run_config_from_json(wire.run_config_to_json(fresh)) == fresh


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(oracle="simulated", asynchronous=True), "annotator_seconds must be > 0 in a simulated asynchronous run"),
        (dict(oracle="simulated", annotator_seconds=1.0), "annotator_seconds applies to simulated asynchronous runs"),
        (dict(annotator_seconds=1.0), "annotator_seconds applies to simulated asynchronous runs"),
        (dict(refill_every=-1), "refill_every must be in [1, 10000]"),
        (dict(refill_every=10_001), "refill_every must be in [1, 10000]"),
        (dict(asynchronous=False), "refill_every applies to asynchronous runs only"),
        (dict(oracle="simulated", asynchronous=True, annotator_seconds=float("nan")), "annotator_seconds must be in"),
        (dict(oracle="simulated", asynchronous=True, annotator_seconds=4000.0), "annotator_seconds must be in"),
    ],
)
def test_impossible_asynchronous_settings_are_refused_and_nothing_is_created(fake_stack, overrides, message):
    core = fake_stack.coordinator()
    with pytest.raises(errors.InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        core.start_run(config(**overrides))
    assert fake_stack.runs.list_runs() == []


def test_the_queue_never_runs_dry_and_fine_tunes_start_in_the_background(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config())
    runs = fake_stack.runs
    wait_for_state(runs, run.id, "WAITING_FOR_LABELS")
    first = core.pending_labels(run.id, "alice")
    assert len(first.samples) == 6 == config().with_defaults().queue_size  # two refills' worth of the 8 seeds
    assert first.remaining == 6
    # Bob gets the 2 seed texts Alice does not hold, never one of hers.
    bob = core.pending_labels(run.id, "bob")
    assert {s.sample_id for s in bob.samples}.isdisjoint(s.sample_id for s in first.samples)
    assert len(bob.samples) == 2

    # The first fine-tune waits for the seed size (8 labels); a held training job does not stop labelling.
    fake_stack.trainer.hold.clear()
    _label(core, fake_stack, run.id, "alice", 6)
    _label(core, fake_stack, run.id, "bob", 2)
    wait_for(lambda: runs.get_run(run.id).step == "TRAIN", what="round 0's fine-tune to start")
    # While it trains the queue is refilled from the fast head (refit on the 8 labels), and labels
    # given meanwhile are taken.
    wait_for(lambda: core.pending_labels(run.id, "alice").samples, what="a refill from the fast head")
    head_calls = [c for c in fake_stack.scorer.calls if c["fast_head"] and c["run_id"] == run.id]
    assert head_calls and all(c["split"] == "train" for c in head_calls)
    labelled_while_training = _label(core, fake_stack, run.id, "alice", 2)
    assert runs.get_run(run.id).step == "TRAIN" and runs.get_run(run.id).labelled_count == 10
    # The fast head's uncertainty ranked the refills once two classes were labelled (what Alice
    # labels meanwhile may also be a text a refill drew at random for Bob before that).
    picked = {a.sample_id: a for a in fake_stack.runs.list_acquisitions(run.id)}
    assert len(labelled_while_training) == 2 and all(i in picked for i in labelled_while_training)
    assert any(a.round == 1 and a.strategy == "entropy" for a in picked.values())
    fake_stack.trainer.hold.set()

    # Label until the run ends: rounds 1 and 2 start after 6 more labels each.
    done = _label_until_done(core, fake_stack, run.id, "alice")
    assert done.state == "COMPLETED" and done.stop_reason == "round limit 3 reached"
    _, rounds = core.get_run(run.id)
    trained_on = [r.labelled_count for r in rounds]
    assert trained_on[0] >= 8 and trained_on[1] >= trained_on[0] + 6 and trained_on[2] >= trained_on[1] + 6
    acquisitions = _no_sample_acquired_twice(fake_stack, run.id)
    # Every label given is in the pool under the run, with who gave it.
    with PoolClient(fake_stack.pool_address, timeout=10) as pool:
        labelled = pool.list_samples("toy", state="labelled", run_id=run.id, page_size=5000)
    assert {s.annotator for s in labelled} == {"alice", "bob"}
    assert {s.id for s in labelled} <= {a.sample_id for a in acquisitions}
    # After the first fine-tune, its scores (the checkpoint, not the head) topped the queue up too.
    assert [c for c in fake_stack.scorer.train_calls(run.id) if not c["fast_head"]]


def test_a_lease_expires_and_the_queue_grows_for_each_person_labelling(fake_stack, monkeypatch):
    clock = [1000.0]
    core = fake_stack.coordinator()
    monkeypatch.setattr(core.queue, "_clock", lambda: clock[0])
    run = core.start_run(config())
    wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")

    def ids(annotator: str = "") -> set[int]:
        return {s.sample_id for s in core.pending_labels(run.id, annotator).samples}

    alice = ids("alice")
    assert len(alice) == 6  # the queue's size, of the 8 seeds
    bob = ids("bob")
    assert len(bob) == 2 and bob.isdisjoint(alice)
    # Bob found the queue held by Alice: it grows to queue_size for each person labelling.
    wait_for(lambda: len(fake_stack.runs.list_acquisitions(run.id, pending_only=True)) == 12, what="the queue to grow")
    bob = ids("bob")
    assert len(bob) == 6 and bob.isdisjoint(alice)
    # Without an annotator (a file export) only texts nobody holds are listed: none now.
    assert ids() == set()
    clock[0] += queue_module.LEASE_SECONDS + 1  # both walked away: their texts go to whoever asks
    assert len(ids()) == 6  # listed, not leased
    carol = ids("carol")
    assert len(carol) == 6
    # Alice comes back: Carol holds six texts now, Alice gets others.
    assert ids("alice").isdisjoint(carol)


def test_labels_outside_the_queue_are_refused_and_a_cancelled_run_takes_none(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config())
    wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")
    acquired = {a.sample_id for a in fake_stack.runs.list_acquisitions(run.id)}
    with PoolClient(fake_stack.pool_address, timeout=10) as pool:
        never = next(s.id for s in pool.list_samples("toy", page_size=5000) if s.id not in acquired)
    with pytest.raises(errors.InvalidArgument, match=rf"samples \[{never}\] are not in the pending batch"):
        core.submit_labels(run.id, [(never, "flight")])
    with pytest.raises(errors.InvalidArgument, match="annotator is 129 characters; at most 128"):
        core.pending_labels(run.id, "a" * 129)
    core.cancel_run(run.id)
    queued = next(iter(acquired))
    with pytest.raises(errors.FailedPrecondition, match="is cancelled"):
        core.submit_labels(run.id, [(queued, "flight")])
    assert core.pending_labels(run.id, "alice").samples == ()
    assert fake_stack.runs.get_run(run.id).labelled_count == 0


def test_a_restarted_coordinator_resumes_an_asynchronous_run_and_asks_nothing_twice(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=2)))
    runs = fake_stack.runs
    wait_for_state(runs, run.id, "WAITING_FOR_LABELS")
    _label(core, fake_stack, run.id, "alice", 5)
    core.close()
    core = fake_stack.coordinator()
    assert core.recover() == [run.id]
    # Leases died with the old coordinator: Bob now sees what Alice held, minus what she labelled.
    seen = [s.sample_id for s in core.pending_labels(run.id, "bob").samples]
    assert len(seen) == 3
    done = _label_until_done(core, fake_stack, run.id, "bob")
    assert done.state == "COMPLETED", done.error
    _no_sample_acquired_twice(fake_stack, run.id)
    assert len(fake_stack.trainer.trained(run.id)) == 2


def test_a_simulated_annotator_drives_an_asynchronous_run_to_the_end(fake_stack):
    core = fake_stack.coordinator()
    run = core.start_run(config(oracle="simulated", asynchronous=True, annotator_seconds=0.01))
    done = wait_for_state(fake_stack.runs, run.id, vocabulary.FINAL_RUN_STATES, timeout=60)
    assert done.state == "COMPLETED", done.error
    _, rounds = core.get_run(run.id)
    assert len(rounds) == 3 and rounds[0].labelled_count >= 8
    assert all(
        later.labelled_count >= earlier.labelled_count + 6 for earlier, later in zip(rounds, rounds[1:], strict=False)
    )
    acquisitions = _no_sample_acquired_twice(fake_stack, run.id)
    assert {a.strategy for a in acquisitions if a.round > 0} <= {"entropy", "random"}
    with PoolClient(fake_stack.pool_address, timeout=10) as pool:
        labelled = pool.list_samples("toy", state="labelled", run_id=run.id, page_size=5000)
    assert labelled and all(s.label_source in ("seed", "oracle") for s in labelled)
    assert [s.label for s in labelled] == _gold(fake_stack, [s.id for s in labelled])


def test_a_simulated_annotator_labels_nothing_once_the_run_is_over(fake_stack):
    """The simulated annotator has a text in hand when the run completes (its fine-tune was held
    while it labelled on): that label is not recorded, as a person's is refused once the run is over
    (found by the chaos suite: a label event in the run's scope after it completed)."""
    import time

    core = fake_stack.coordinator()
    fake_stack.trainer.hold.clear()
    run = core.start_run(
        config(
            oracle="simulated", asynchronous=True, annotator_seconds=0.3, stopping=contract.StoppingRule(max_rounds=1)
        )
    )
    runs = fake_stack.runs
    wait_for(lambda: runs.get_run(run.id).step == "TRAIN", what="round 0's fine-tune to start")
    wait_for(lambda: runs.get_run(run.id).labelled_count >= 10, what="labels while the fine-tune is held")
    fake_stack.trainer.hold.set()
    done = wait_for_state(runs, run.id, vocabulary.FINAL_RUN_STATES)
    assert done.state == "COMPLETED", done.error
    time.sleep(1.0)  # past the annotator's time on the text it held
    with PoolClient(fake_stack.pool_address, timeout=10) as pool:
        labelled = pool.list_samples("toy", state="labelled", run_id=run.id, page_size=5000)
    assert runs.get_run(run.id).labelled_count == done.labelled_count == len(labelled)


def test_a_round_records_the_labels_its_fine_tune_started_with_not_those_that_came_in_meanwhile(fake_stack):
    """Labels keep coming while an asynchronous round fine-tunes; the round's labelled count (its
    point on the learning curve, and the count the next fine-tune is due from) is the count its
    training started with."""
    core = fake_stack.coordinator()
    fake_stack.trainer.hold.clear()
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=2)))
    runs = fake_stack.runs
    wait_for_state(runs, run.id, "WAITING_FOR_LABELS")
    _label(core, fake_stack, run.id, "alice", 6)
    _label(core, fake_stack, run.id, "bob", 2)
    wait_for(lambda: runs.get_run(run.id).step == "TRAIN", what="round 0's fine-tune to start")
    wait_for(lambda: core.pending_labels(run.id, "alice").samples, what="a refill from the fast head")
    _label(core, fake_stack, run.id, "alice", 3)
    assert runs.get_run(run.id).labelled_count == 11
    fake_stack.trainer.hold.set()
    wait_for(lambda: runs.get_run(run.id).round == 1, what="round 0 to end")
    _, rounds = core.get_run(run.id)
    assert rounds[0].labelled_count == 8
    # Round 1 is due at 8 + 6 labels: 3 more.
    assert runs.get_run(run.id).step == "LABEL"
    _label(core, fake_stack, run.id, "alice", 3)
    wait_for(lambda: runs.get_run(run.id).step != "LABEL", what="round 1's fine-tune to start")


def test_people_who_label_the_rest_of_the_pool_during_a_fine_tune_get_a_model_trained_on_it(fake_stack):
    """The pool runs out while round 0 fine-tunes: the run must not end on a model that never saw
    those labels (it did, found by a flaky end-to-end test: the stopping rule read the live label
    count); it fine-tunes once more on every label, then ends."""
    core = fake_stack.coordinator()
    fake_stack.trainer.hold.clear()
    run = core.start_run(config(stopping=contract.StoppingRule(max_rounds=5)))
    runs = fake_stack.runs
    wait_for_state(runs, run.id, "WAITING_FOR_LABELS")
    _label(core, fake_stack, run.id, "alice", 6)
    _label(core, fake_stack, run.id, "bob", 2)
    wait_for(lambda: runs.get_run(run.id).step == "TRAIN", what="round 0's fine-tune to start")
    pool_size = runs.get_run(run.id).pool_size
    for _ in range(100):  # the whole pool, from the fast head's refills, while round 0 trains
        if runs.get_run(run.id).labelled_count >= pool_size:
            break
        if not _label(core, fake_stack, run.id, "alice", 3):
            wait_for(lambda: core.pending_labels(run.id, "alice").samples, what="a refill")
    assert runs.get_run(run.id).labelled_count == pool_size and runs.get_run(run.id).round == 0
    fake_stack.trainer.hold.set()
    done = wait_for_state(runs, run.id, vocabulary.FINAL_RUN_STATES)
    assert done.state == "COMPLETED" and done.stop_reason == "every pool sample is labelled"
    _, rounds = core.get_run(run.id)
    assert [(r.index, r.labelled_count) for r in rounds] == [(0, 8), (1, pool_size)]
    assert all(r.checkpoint_id for r in rounds)


def test_a_queue_that_ran_dry_while_the_scorer_was_down_is_refilled_when_someone_asks(fake_stack, monkeypatch):
    """Each label's refill failed while the fast head was unavailable, the person labelled the queue
    empty, and the run waits for more labels than it had texts: nobody can label, so no label asks
    for a refill again. Asking for texts does, once the scorer is back (a person's page polls)."""
    down = threading.Event()
    down.set()
    score = fake_stack.scorer.score_pool_chunks

    def fast_head_down(samples, **options):
        if options.get("fast_head") is not None and down.is_set():
            raise errors.Unavailable("the scorer is restarting")
        return score(samples, **options)

    monkeypatch.setattr(fake_stack.scorer, "score_pool_chunks", fast_head_down)
    core = fake_stack.coordinator()
    run = core.start_run(config(batch_size=contract.Amount(count=10)))
    runs = fake_stack.runs
    wait_for_state(runs, run.id, "WAITING_FOR_LABELS")
    _label(core, fake_stack, run.id, "alice", 6)
    _label(core, fake_stack, run.id, "bob", 2)
    # Round 0 fine-tunes on the seed set; its SELECT tops the queue up from the checkpoint (6 texts).
    wait_for(lambda: (r := runs.get_run(run.id)).round == 1 and r.state == "WAITING_FOR_LABELS", what="round 1 to wait")
    while _label(core, fake_stack, run.id, "alice", 3):
        pass
    wait_for(lambda: run.id not in core.queue._refilling, what="the failed refills to end")
    assert runs.get_run(run.id).labelled_count == 14 < 18  # round 1 is due at 8 + 10 labels
    assert core.pending_labels(run.id, "alice").samples == ()
    down.clear()  # the scorer is back
    refilled = wait_for(lambda: core.pending_labels(run.id, "alice").samples, 10, what="the queue to be refilled")
    assert all(a.strategy == "entropy" for a in refilled)


def test_an_asynchronous_run_has_its_pool_embedded_while_the_seed_set_is_labelled(fake_stack):
    # The seed set needs no model; meanwhile the scorer embeds the pool for the fast head, so the
    # first refill reads kept embeddings instead of computing them while someone waits.
    core = fake_stack.coordinator()
    run = core.start_run(config(base_model="tiny"))
    wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")
    assert core.pending_labels(run.id, "alice").samples  # the seed set, before any label
    calls = wait_for(lambda: fake_stack.scorer.embed_calls, what="the pool embedding")
    assert calls == [{"dataset": "toy", "base_model": "tiny", "shard": None}]
    # Once per run in a coordinator: labels and workers picking the run up again do not repeat it...
    _label(core, fake_stack, run.id, "alice", 4)
    core.close()
    # ...but a restarted coordinator asks again (texts kept before cost the scorer a lookup each).
    restarted = fake_stack.coordinator()
    restarted.recover()
    wait_for(lambda: len(fake_stack.scorer.embed_calls) == 2, what="the embedding after a restart")
    # A synchronous run embeds nothing ahead: its rounds score with fine-tuned checkpoints.
    sync = restarted.start_run(config(asynchronous=False, refill_every=0))
    wait_for_state(fake_stack.runs, sync.id, "WAITING_FOR_LABELS")
    assert [c["dataset"] for c in fake_stack.scorer.embed_calls] == ["toy", "toy"]


def test_a_failed_pool_embedding_is_logged_and_the_run_goes_on(fake_stack, monkeypatch, caplog):
    def down(dataset, **kwargs):
        raise errors.Unavailable("scorer at 127.0.0.1:1 is unavailable")

    monkeypatch.setattr(fake_stack.scorer, "embed_pool", down)
    core = fake_stack.coordinator()
    with caplog.at_level("WARNING", logger="lesslabels.coordinator.queue"):
        run = core.start_run(config())
        wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")
        wait_for(lambda: "event=pool_embedding_failed" in caplog.text, what="the failure logged")
    assert _label(core, fake_stack, run.id, "alice", 4)
    assert fake_stack.runs.get_run(run.id).state == "WAITING_FOR_LABELS"
