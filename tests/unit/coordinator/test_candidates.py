"""A round's scoring over the real pool (gRPC, temp SQLite) with the fake scorer, which records every
sample it was asked to score: only unlabelled samples; with ``candidates`` N exactly N of them, a
subset the pool draws for (run seed, round), the same on every coordinator and after a restart; no
probability rows; embeddings of the kept candidates only; selections equal to the strategies' over
the whole pool; agreement on the unlabelled samples both rounds scored."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from lesslabels import contract
from lesslabels.contract import vocabulary
from lesslabels.coordinator import strategies
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.coordinator.scores import PoolScoreCache, agreement_seed, candidate_seed
from tests.helpers import BIG_TRAIN
from tests.stack import FakeScorer, wait_for, wait_for_state

TRAIN = BIG_TRAIN
SEED, BATCH = 8, 6


def config(**overrides) -> contract.RunConfig:
    base = dict(
        dataset="big",
        seed_size=contract.Amount(count=SEED),
        batch_size=contract.Amount(count=BATCH),
        stopping=contract.StoppingRule(max_rounds=3),
        random_seed=7,
        strategy="entropy",
        candidates=50,
    )
    base.update(overrides)
    return contract.RunConfig(**base)


def _round(call: dict) -> int:
    return int(call["checkpoint_id"].split("-")[2].removeprefix("round"))


def _selection_calls(scorer: FakeScorer, run: contract.Run) -> dict[int, list[dict]]:
    """Round -> the calls that scored the round's candidates (not its agreement set, not embeddings)."""
    seed = run.config.random_seed
    calls = collections.defaultdict(list)
    for call in scorer.train_calls(run.id):
        if call["subset_seed"] == candidate_seed(seed, _round(call)) or not call["subset"]:
            calls[_round(call)].append(call)
    return calls


def _acquired(stack, run_id: int) -> dict[int, list[int]]:
    by_round = collections.defaultdict(list)
    for a in stack.runs.list_acquisitions(run_id):
        by_round[a.round].append(a.sample_id)
    return by_round


def _finish(stack, run: contract.Run) -> contract.Run:
    done = wait_for_state(stack.runs, run.id, vocabulary.FINAL_RUN_STATES)
    assert done.state == "COMPLETED", done.error
    return done


def test_a_run_with_candidates_scores_exactly_n_unlabelled_samples_per_round(big):
    run = big.coordinator().start_run(config())
    _finish(big, run)
    acquired = _acquired(big, run.id)
    calls = _selection_calls(big.scorer, run)
    assert sorted(calls) == [0, 1]  # round 2 ends at its round limit before scoring
    subsets = []
    for r in (0, 1):
        [call] = calls[r]
        scored = call["scored"]
        assert len(scored) == 50 and len(set(scored)) == 50
        assert call["subset"] == 50 and not call["include_all"] and not call["probabilities"]
        labelled = {i for q in range(r + 1) for i in acquired[q]}
        assert not set(scored) & labelled, "a labelled sample was scored as a candidate"
        # The batch is the 6 most uncertain of exactly those 50, as the entropy strategy ranks them.
        scores = big.scorer.score_pool(
            contract.SampleQuery("big", run_id=run.id, include_all=True, sample_ids=scored),
            checkpoint=call["checkpoint_id"],
        )
        expected = scores.sample_ids[strategies.select("entropy", BATCH, probs=scores.probabilities).indices]
        assert acquired[r + 1] == expected.tolist()
        subsets.append(set(scored))
    # Each round draws a fresh subset: two independent draws of 50 out of ~290 share about 9 samples
    # (a subset that only lost the labelled batch would share 44).
    assert len(subsets[0] & subsets[1]) < 30, "round 1 scored nearly the same candidates as round 0"
    # Nothing else scored the training pool with a checkpoint: no agreement pass without the rule.
    assert len(big.scorer.train_calls(run.id)) == 2 + 2  # the two rounds, and the two checks above
    _, rounds = big.coordinator().get_run(run.id)
    assert [r.agreement for r in rounds] == [0.0, 0.0, 0.0]


def test_two_coordinators_with_the_same_seed_score_the_same_subsets_and_pick_the_same(big):
    first = big.coordinator().start_run(config())
    second = big.coordinator().start_run(config())
    other = big.coordinator().start_run(config(random_seed=8))
    for run in (first, second, other):
        _finish(big, run)

    def subsets(run):
        return {r: c[0]["scored"] for r, c in _selection_calls(big.scorer, run).items()}

    assert subsets(first) == subsets(second) and len(subsets(first)) == 2
    assert _acquired(big, first.id) == _acquired(big, second.id)
    assert subsets(other)[0] != subsets(first)[0]


class _Died(BaseException):
    """Kills the worker thread on the spot, like a killed process (no cleanup, no FAILED state)."""


class _DieAfterScoring:
    """A pool that dies right after the SCORE step of round 0 was recorded (the run moved to SELECT)."""

    def __init__(self, pool: RunStoreClient):
        self._pool = pool
        self.died = False

    def __getattr__(self, name):
        target = getattr(self._pool, name)
        if name != "record_step":
            return target

        def call(*args, **kwargs):
            result = target(*args, **kwargs)
            if not self.died and kwargs.get("step") == "SELECT":
                self.died = True
                raise _Died()
            return result

        return call


def test_a_restarted_coordinator_scores_the_same_subset_again(big):
    reference = big.coordinator().start_run(config())
    _finish(big, reference)
    dying = _DieAfterScoring(big.runs)
    first = big.coordinator(runs=dying)
    run = first.start_run(config())
    wait_for(lambda: dying.died and not first.active_runs(), what="the coordinator to die after scoring")
    first.close()
    assert big.runs.get_run(run.id).step == "SELECT"
    second = big.coordinator()
    assert second.recover() == [run.id]
    _finish(big, run)
    calls = _selection_calls(big.scorer, run)
    # Round 0 was scored twice (its scores were lost with the coordinator): the same 50 samples.
    assert len(calls[0]) == 2 and calls[0][0]["scored"] == calls[0][1]["scored"]
    assert _acquired(big, run.id) == _acquired(big, reference.id)


def test_more_candidates_than_the_unlabelled_pool_scores_all_of_it(big):
    run = big.coordinator().start_run(config(candidates=10_000, stopping=contract.StoppingRule(max_rounds=2)))
    _finish(big, run)
    [call] = _selection_calls(big.scorer, run)[0]
    assert sorted(call["scored"]) == sorted(set(call["scored"])) and len(call["scored"]) == TRAIN - SEED


def test_with_candidates_agreement_is_measured_on_a_fixed_set_only_when_the_run_stops_on_it(big):
    big.scorer.stable = True  # the same predictions every round: agreement 1
    run = big.coordinator().start_run(config(stopping=contract.StoppingRule(stable_agreement=0.99, max_rounds=5)))
    done = _finish(big, run)
    assert done.stop_reason.startswith("predictions stable: 1.0000 of the pool unchanged")
    agreement_calls = [c for c in big.scorer.train_calls(run.id) if c["subset_seed"] == agreement_seed(7)]
    assert [_round(c) for c in agreement_calls] == [0, 1]
    assert all(c["subset"] == 50 and not c["probabilities"] and not c["include_all"] for c in agreement_calls)
    # The same set each round, less the samples labelled in between.
    first, second = (set(c["scored"]) for c in agreement_calls)
    assert len(first) == len(second) == 50 and len(first & second) >= 50 - BATCH
    _, rounds = big.coordinator().get_run(run.id)
    assert [r.agreement for r in rounds] == [0.0, 1.0]


def test_without_candidates_agreement_compares_the_unlabelled_samples_both_rounds_scored(big):
    run = big.coordinator().start_run(config(candidates=0, stopping=contract.StoppingRule(max_rounds=3)))
    _finish(big, run)
    calls = _selection_calls(big.scorer, run)
    acquired = _acquired(big, run.id)
    assert all(not c[0]["include_all"] and not c[0]["subset"] for c in calls.values())
    assert len(calls[0][0]["scored"]) == TRAIN - SEED and len(calls[1][0]["scored"]) == TRAIN - SEED - BATCH
    assert not set(calls[1][0]["scored"]) & {i for r in (0, 1) for i in acquired[r]}
    # Round 1's agreement: the samples unlabelled in round 1, predicted by both checkpoints.
    both = calls[1][0]["scored"]
    both_query = contract.SampleQuery("big", run_id=run.id, include_all=True, sample_ids=both)
    before = big.scorer.score_pool(both_query, checkpoint=calls[0][0]["checkpoint_id"])
    after = big.scorer.score_pool(both_query, checkpoint=calls[1][0]["checkpoint_id"])
    expected = float(np.mean(before.predicted == after.predicted))
    _, rounds = big.coordinator().get_run(run.id)
    assert 0 < expected < 1 and rounds[1].agreement == pytest.approx(expected)


@pytest.mark.parametrize("strategy", sorted(strategies.QUERY_STRATEGIES))
def test_streamed_selection_equals_the_strategy_over_the_whole_pool(big, strategy):
    """What a round selects from the stream (running top-k, embeddings of the kept candidates
    only) is what the strategy selects given every sample's probabilities and embeddings."""
    run = big.coordinator().start_run(
        config(strategy=strategy, candidates=0, stopping=contract.StoppingRule(max_rounds=2))
    )
    _finish(big, run)
    acquired = _acquired(big, run.id)
    checkpoint = _selection_calls(big.scorer, run)[0][0]["checkpoint_id"]
    calls = list(big.scorer.train_calls(run.id)) + big.scorer.train_calls(run.id, embeddings=True)
    assert not any(c["probabilities"] for c in calls), "a round asked for probability rows"
    embedded = big.scorer.train_calls(run.id, embeddings=True)
    if strategies.NEEDS[strategy].embeddings:
        [call] = embedded  # only the kept candidates: CANDIDATE_FACTOR * batch of them
        assert len(call["sample_ids"]) == strategies.CANDIDATE_FACTOR * BATCH and call["include_all"]
    else:
        assert embedded == []
    whole = big.scorer.score_pool(
        contract.SampleQuery("big", run_id=run.id, include_all=True), checkpoint=checkpoint, embeddings=True
    )
    selection = strategies.select(
        strategy,
        BATCH,
        probs=whole.probabilities,
        embeddings=whole.embeddings,
        exclude=np.isin(whole.sample_ids, acquired[0]),
        rng=np.random.default_rng([7, 1]),
    )
    assert acquired[1] == whole.sample_ids[selection.indices].tolist()
    scores = {a.sample_id: a.score for a in big.runs.list_acquisitions(run.id, 1)}
    assert [scores[i] for i in acquired[1]] == pytest.approx(selection.scores.tolist())


@pytest.mark.parametrize(
    "strategy, candidates, kept",
    [("entropy", 0, BATCH), ("clustered_margin", 0, strategies.CANDIDATE_FACTOR * BATCH), ("random", 50, 50)],
)
def test_a_round_keeps_only_the_candidates_selection_needs(big, strategy, candidates, kept):
    pool = big.runs
    run = pool.create_run(config(strategy=strategy, candidates=candidates).with_defaults())
    run = pool.get_run(run.id)
    cache = PoolScoreCache(pool, big.scorer)
    scores = cache.of_round(run, 0, "ckpt-run1-round0-x", BATCH)
    assert scores.candidates.shape == scores.scores.shape == (kept,)
    assert scores.scored == (candidates or TRAIN)
    if strategy != "random":
        assert np.all(np.diff(scores.scores) <= 0), "kept candidates are best first"
    # Predictions for the agreement come with the stream when it is the whole unlabelled pool.
    if candidates:
        assert scores.predictions is None
    else:
        assert scores.predictions is not None and scores.predictions.sample_ids.size == TRAIN
