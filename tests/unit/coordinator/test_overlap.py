"""Two people on purpose (RunConfig.overlap): a deterministic share of the queued texts goes to a
second person once a first one labelled it, blind to the first label, never twice to one person;
the second label is kept beside the first, and a disagreement is flagged in the pool."""

from __future__ import annotations

import pytest

from lesslabels import contract
from lesslabels.client import PoolClient
from lesslabels.common import errors
from tests.stack import wait_for_state
from tests.unit.coordinator.test_asynchronous import _gold, config


def test_the_overlap_share_is_a_deterministic_fraction_of_the_texts():
    cfg = config(overlap=0.3)
    share = [i for i in range(20_000) if cfg.in_overlap(i)]
    assert abs(len(share) / 20_000 - 0.3) < 0.015
    assert share == [i for i in range(20_000) if config(overlap=0.3).in_overlap(i)]  # the same every time
    assert share != [i for i in range(20_000) if config(overlap=0.3, random_seed=8).in_overlap(i)]
    assert not any(config().in_overlap(i) for i in range(1000))  # 0: every text once
    assert all(config(overlap=1.0).in_overlap(i) for i in range(1000))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(overlap=1.5), "overlap must be in [0, 1], got 1.5"),
        (dict(overlap=-0.1), "overlap must be in [0, 1], got -0.1"),
        (dict(overlap=float("inf")), "overlap must be in [0, 1], got inf"),
        (dict(overlap=0.2, asynchronous=False, refill_every=0), "overlap applies to asynchronous runs with the human"),
        (dict(overlap=0.2, oracle="simulated", asynchronous=True, annotator_seconds=1.0), "overlap applies to"),
    ],
)
def test_impossible_overlaps_are_refused_and_nothing_is_created(fake_stack, overrides, message):
    core = fake_stack.coordinator()
    with pytest.raises(errors.InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        core.start_run(config(**overrides))
    assert fake_stack.runs.list_runs() == []


def test_texts_of_the_overlap_share_go_to_a_second_person_and_a_disagreement_is_flagged(fake_stack):
    cfg = config(overlap=0.5)
    core = fake_stack.coordinator()
    run = core.start_run(cfg)
    wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")
    alice = [s.sample_id for s in core.pending_labels(run.id, "alice").samples]
    shared = [i for i in alice if cfg.in_overlap(i)]
    assert 0 < len(shared) < len(alice) == 6  # seed 7: some of Alice's texts, not all, are in the share
    gold = dict(zip(alice, _gold(fake_stack, alice), strict=True))
    core.submit_labels(run.id, list(gold.items()), annotator="alice")

    # Bob gets the shared texts Alice labelled first, without her label, then the fresh ones.
    bob = core.pending_labels(run.id, "bob").samples
    assert [s.sample_id for s in bob][: len(shared)] == shared and all(s.label == "" for s in bob)
    assert set(s.sample_id for s in bob[len(shared) :]).isdisjoint(alice)
    # Never to Alice again, nor to Carol while Bob holds them.
    assert set(shared).isdisjoint(s.sample_id for s in core.pending_labels(run.id, "alice").samples)
    assert set(shared).isdisjoint(s.sample_id for s in core.pending_labels(run.id, "carol").samples)

    # Bob agrees on all but the first: his labels are kept beside hers, hers stay in force.
    other = next(label for label in ("flight", "airfare") if label != gold[shared[0]])
    seconds = [(shared[0], other)] + [(i, gold[i]) for i in shared[1:]]
    result, _ = core.submit_labels(run.id, seconds, annotator="bob", idempotency_key="bob-1")
    assert (result.recorded, result.second_opinions, result.changed) == (len(shared), len(shared), 0)
    assert dict(result.labels) == {i: gold[i] for i in shared}
    # A retry of the same submission records nothing (the texts are out of his queue by now).
    again, _ = core.submit_labels(run.id, seconds, annotator="bob", idempotency_key="bob-1")
    assert again.recorded == 0 and again.unchanged == len(shared)
    assert fake_stack.runs.get_run(run.id).labelled_count == 6  # a second opinion labels nothing new
    by_id = {a.sample_id: a for a in fake_stack.runs.list_acquisitions(run.id)}
    assert by_id[shared[0]].label == gold[shared[0]]
    assert by_id[shared[0]].opinions == {"alice": gold[shared[0]], "bob": other}

    # Two opinions each: nobody else is asked.
    assert set(shared).isdisjoint(s.sample_id for s in core.pending_labels(run.id, "carol").samples)
    with PoolClient(fake_stack.pool_address, timeout=10) as pool:
        flagged = pool.label_opinions("toy", disputed_only=True)
        assert [t.sample_id for t in flagged] == [shared[0]]
        assert {o.annotator: o.label for o in flagged[0].opinions} == {"alice": gold[shared[0]], "bob": other}
        assert len(pool.label_opinions("toy")) == len(shared)


def test_without_overlap_a_text_labelled_by_someone_else_takes_a_second_opinion_not_a_refusal(fake_stack):
    """A lease that ran out can hand a text to two people: the second label is kept beside the first."""
    core = fake_stack.coordinator()
    run = core.start_run(config())
    wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")
    alice = [s.sample_id for s in core.pending_labels(run.id, "alice").samples]
    gold = dict(zip(alice, _gold(fake_stack, alice), strict=True))
    core.submit_labels(run.id, [(alice[0], gold[alice[0]])], annotator="alice")
    assert alice[0] not in {s.sample_id for s in core.pending_labels(run.id, "bob").samples}  # no overlap asked
    other = next(label for label in ("flight", "airfare") if label != gold[alice[0]])
    result, _ = core.submit_labels(run.id, [(alice[0], other)], annotator="bob")
    assert result.second_opinions == 1 and dict(result.labels) == {alice[0]: gold[alice[0]]}
    # Without a name there is nobody to compare: outside the queue it is refused as before.
    with pytest.raises(errors.InvalidArgument, match="not in the pending batch"):
        core.submit_labels(run.id, [(alice[0], other)])
    assert contract.RunConfig("toy", oracle="human").overlap == 0.0


def test_two_people_on_one_synchronous_batch_never_overwrite_each_other(fake_stack):
    """A synchronous batch is one list both pages show: the second person's different label goes
    beside the first, which stays in force, and the disagreement is flagged; a person may still
    correct their own label."""
    core = fake_stack.coordinator()
    run = core.start_run(config(asynchronous=False, refill_every=0))
    wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")
    batch = [s.sample_id for s in core.pending_labels(run.id, "alice").samples]
    gold = dict(zip(batch, _gold(fake_stack, batch), strict=True))
    first = batch[0]
    other = next(label for label in ("flight", "airfare") if label != gold[first])
    core.submit_labels(run.id, [(first, gold[first])], annotator="alice")
    # Bob's page still shows the text: his label does not replace Alice's.
    result, remaining = core.submit_labels(run.id, [(first, other)], annotator="bob")
    assert (result.second_opinions, result.changed) == (1, 0)
    assert dict(result.labels) == {first: gold[first]}
    assert remaining == len(batch) - 1  # a second opinion labels nothing new
    by_id = {a.sample_id: a for a in fake_stack.runs.list_acquisitions(run.id)}
    assert by_id[first].label == gold[first]
    assert by_id[first].opinions == {"alice": gold[first], "bob": other}
    with PoolClient(fake_stack.pool_address, timeout=10) as pool:
        assert [t.sample_id for t in pool.label_opinions("toy", disputed_only=True)] == [first]
    # Alice corrects her own label: that one is changed, in force.
    result, _ = core.submit_labels(run.id, [(first, other)], annotator="alice")
    assert result.changed == 1
    assert {a.sample_id: a.label for a in fake_stack.runs.list_acquisitions(run.id)}[first] == other
