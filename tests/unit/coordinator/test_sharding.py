"""A round's scoring sharded over several scorer replicas (``coordinator.sharding``), over the real
pool (gRPC, temp SQLite) with fake scorers that record what they scored: every unlabelled sample
scored exactly once across the replicas, what a round keeps and selects equal to one unsharded
pass, a shard lost with its replica (unavailable, past its deadline, its stream dropped) scored
again on another one, a clear error naming the shard when every attempt fails, and no retry of a
request no replica could serve. The same with real scorer processes: tests/integration/test_score_shards.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lesslabels.common import errors
from lesslabels.contract.shards import Shard
from lesslabels import contract
from lesslabels.contract import vocabulary
from lesslabels.coordinator import strategies
from lesslabels.client import PoolClient
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.coordinator.orchestrator import Coordinator
from lesslabels.coordinator.main import scorer_address_list
from lesslabels.coordinator.scores import PoolScoreCache
from lesslabels.coordinator.sharding import ScorerReplicas
from tests.helpers import BIG_TRAIN
from tests.stack import FakeScorer, wait_for_state

TRAIN = BIG_TRAIN  # the conftest fixture 'big'
SEED, BATCH = 8, 6


@pytest.fixture
def replicas(big):
    """Three fake scorers on the same pool, each recording its own calls."""
    made = [FakeScorer(big.pool_address) for _ in range(3)]
    yield made
    for scorer in made:
        scorer.close()


def config(**overrides) -> contract.RunConfig:
    base = dict(
        dataset="big",
        seed_size=contract.Amount(count=SEED),
        batch_size=contract.Amount(count=BATCH),
        stopping=contract.StoppingRule(max_rounds=3),
        random_seed=7,
        strategy="entropy",
    )
    base.update(overrides)
    return contract.RunConfig(**base)


def _run(pool: RunStoreClient, **overrides) -> contract.Run:
    run = pool.create_run(config(**overrides).with_defaults())
    return pool.get_run(run.id)


class Flaky:
    """A scorer replica whose ScorePool streams fail with ``error`` after ``after`` chunks, the first
    ``times`` times it is called (its server went away mid-stream, or the call ran past its deadline)."""

    def __init__(self, inner: FakeScorer, error: Exception, *, after: int = 1, times: int = 1):
        self.inner, self.error, self.after, self.times = inner, error, after, times
        self.failed = 0

    def score_pool(self, samples, **kwargs):
        return self.inner.score_pool(samples, **kwargs)

    def score_pool_chunks(self, samples, **kwargs):
        for n, chunk in enumerate(self.inner.score_pool_chunks(samples, **kwargs)):
            if n == self.after and self.failed < self.times:
                self.failed += 1
                raise self.error
            yield chunk


def _scored_by(scorer: FakeScorer, run_id: int) -> list[int]:
    return [i for call in scorer.train_calls(run_id) for i in call["scored"]]


def _same_round(a, b) -> None:
    assert a.candidates.tolist() == b.candidates.tolist()
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.scored == b.scored
    if a.predictions is None:
        assert b.predictions is None
    else:
        assert b.predictions is not None and a.predictions.labels == b.predictions.labels
        order_a, order_b = np.argsort(a.predictions.sample_ids), np.argsort(b.predictions.sample_ids)
        assert a.predictions.sample_ids[order_a].tolist() == b.predictions.sample_ids[order_b].tolist()
        assert a.predictions.predicted[order_a].tolist() == b.predictions.predicted[order_b].tolist()


@pytest.mark.parametrize("strategy", ["entropy", "margin", "clustered_margin", "random"])
@pytest.mark.parametrize("candidates", [0, 120])
@pytest.mark.parametrize("shards", [2, 3, 5])
def test_a_sharded_round_keeps_exactly_what_one_unsharded_pass_keeps(big, replicas, strategy, candidates, shards):
    pool = RunStoreClient(big.pool_address, timeout=10)
    run = _run(pool, strategy=strategy, candidates=candidates)
    one = PoolScoreCache(pool, big.scorer).of_round(run, 0, "ckpt-run1-round0-x", BATCH)
    sharded = PoolScoreCache(pool, ScorerReplicas(replicas, shards=shards)).of_round(
        run, 0, "ckpt-run1-round0-x", BATCH
    )
    _same_round(sharded, one)
    # Every candidate scored exactly once across the replicas, each shard by the replica it fell to.
    scored = [i for r in replicas for i in _scored_by(r, run.id)]
    assert sorted(scored) == sorted(_scored_by(big.scorer, run.id)) and len(scored) == (candidates or TRAIN)
    calls = [c for r in replicas for c in r.train_calls(run.id)]
    assert sorted(c["shard"].index for c in calls) == list(range(shards))
    assert all(c["shard"].count == shards for c in calls)
    for position, r in enumerate(replicas):
        assert [c["shard"].index for c in r.train_calls(run.id)] == list(range(position, shards, len(replicas)))


def test_a_sharded_run_selects_what_a_one_scorer_run_selects(big, replicas):
    """Whole runs (seed set, three rounds, agreement) through the coordinator: the same acquisitions."""
    pool = RunStoreClient(big.pool_address, timeout=10)
    sharded = ScorerReplicas(replicas[:2], shards=3)
    core = Coordinator(
        PoolClient(big.pool_address, timeout=10),
        pool,
        big.trainer,
        sharded,
        retry_backoff=0.05,
        outage_seconds=1.0,
        supervise_seconds=0.2,
    )
    big.coordinators.append(core)
    rule = contract.StoppingRule(max_rounds=3, stable_agreement=0.99)
    for strategy in ("entropy", "clustered_entropy"):
        runs = [c.start_run(config(strategy=strategy, stopping=rule)) for c in (big.coordinator(), core)]
        done = [wait_for_state(pool, r.id, vocabulary.FINAL_RUN_STATES) for r in runs]
        assert [d.state for d in done] == ["COMPLETED", "COMPLETED"], [d.error for d in done]
        acquired = [[(a.round, a.sample_id) for a in pool.list_acquisitions(r.id)] for r in runs]
        assert acquired[0] == acquired[1] and len(acquired[0]) == SEED + 2 * BATCH
        rounds = [[(r.index, r.agreement) for r in pool.list_rounds(run.id)] for run in runs]
        assert rounds[0] == rounds[1]
    # Both replicas scored rounds of the sharded runs.
    assert all(r.calls for r in replicas[:2])


@pytest.mark.parametrize(
    "error",
    [
        errors.Unavailable("scorer at 127.0.0.1:1: Socket closed"),  # the replica died mid-stream
        errors.DeadlineExceeded("scorer at 127.0.0.1:1: Deadline Exceeded"),
    ],
    ids=["unavailable", "deadline"],
)
def test_a_shard_whose_replica_fails_is_scored_again_on_another(big, replicas, error, caplog):
    pool = RunStoreClient(big.pool_address, timeout=10)
    run = _run(pool, candidates=150)
    one = PoolScoreCache(pool, big.scorer).of_round(run, 0, "ckpt-run1-round0-x", BATCH)
    flaky = Flaky(replicas[1], error, after=2)
    sharded = ScorerReplicas([replicas[0], flaky, replicas[2]], names=["s0", "s1", "s2"], shards=3)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(done: int, total: int) -> None:
        with lock:
            seen.append((done, total))

    kept = PoolScoreCache(pool, sharded).of_round(run, 0, "ckpt-run1-round0-x", BATCH, progress)
    _same_round(kept, one)  # the failed attempt's two chunks were thrown away, not counted twice
    assert flaky.failed == 1
    # Shard 1 went to s1 first, then to the next replica, s2, which scored shard 2 as well.
    [retried] = [c for c in replicas[2].train_calls(run.id) if c["shard"] == Shard(1, 3)]
    assert retried["scored"] == [i for i in _scored_by(big.scorer, run.id) if i % 3 == 1]
    assert "event=score_shard_failed" in caplog.text and "shard=1/3 scorer=s1" in caplog.text
    assert seen[-1] == (150, 150)  # progress over all shards, the retried one counted once


def test_when_every_attempt_fails_the_error_names_the_shard_and_each_attempt(big, replicas):
    pool = RunStoreClient(big.pool_address, timeout=10)
    run = _run(pool)
    down = [Flaky(r, errors.Unavailable(f"scorer {i} is down"), after=0, times=10) for i, r in enumerate(replicas)]
    sharded = ScorerReplicas(down[:2] + [replicas[2]], names=["s0", "s1", "s2"], shards=3, attempts=2)
    with pytest.raises(errors.Unavailable) as info:
        PoolScoreCache(pool, sharded).of_round(run, 0, "ckpt-run1-round0-x", BATCH)
    message = str(info.value)
    # Shard 0 tried s0 then s1, both down; shard 1 tried s1 then s2, which scored it.
    assert "run 1 round 0: scoring the pool: shard 0/3 failed on all 2 attempts" in message
    assert "s0: scorer 0 is down; s1: scorer 1 is down" in message
    assert down[0].failed == 1 and down[1].failed >= 1


def test_an_error_no_replica_can_mend_fails_at_once_without_retries(big, replicas):
    pool = RunStoreClient(big.pool_address, timeout=10)
    run = _run(pool)
    bad = [Flaky(r, errors.NotFound("checkpoint ckpt-x not found"), after=0, times=10) for r in replicas]
    with pytest.raises(errors.NotFound, match="checkpoint ckpt-x not found"):
        PoolScoreCache(pool, ScorerReplicas(bad, shards=3)).of_round(run, 0, "ckpt-run1-round0-x", BATCH)
    assert sum(b.failed for b in bad) <= 3  # one attempt per shard at most, none repeated


def test_a_run_rides_out_a_round_whose_shards_all_failed_and_completes(big, replicas):
    """Every replica fails once per shard: the round fails as an outage, is redone, and selects
    what a one-scorer run selects (scoring is deterministic)."""
    pool = RunStoreClient(big.pool_address, timeout=10)
    flaky = [Flaky(r, errors.Unavailable("gone"), after=1, times=2) for r in replicas[:2]]
    sharded = ScorerReplicas(flaky, shards=2, attempts=1)
    core = Coordinator(
        PoolClient(big.pool_address, timeout=10),
        pool,
        big.trainer,
        sharded,
        retry_backoff=0.05,
        outage_seconds=30.0,
        supervise_seconds=0.2,
    )
    big.coordinators.append(core)
    runs = [c.start_run(config(candidates=100)) for c in (big.coordinator(), core)]
    done = [wait_for_state(pool, r.id, vocabulary.FINAL_RUN_STATES) for r in runs]
    assert [d.state for d in done] == ["COMPLETED", "COMPLETED"], [d.error for d in done]
    assert all(f.failed == 2 for f in flaky)
    acquired = [[(a.round, a.sample_id) for a in pool.list_acquisitions(r.id)] for r in runs]
    assert acquired[0] == acquired[1]


def test_merging_running_top_ks_equals_one_over_everything():
    rng = np.random.default_rng(3)
    keys = rng.permutation(1000)
    priority = rng.integers(0, 20, 1000).astype(float)  # many ties
    priority[::37] = np.nan
    tie = rng.integers(0, 3, 1000).astype(float)
    whole = strategies.RunningTopK(25)
    whole.push(keys, priority, tie)
    parts = []
    for index in range(4):
        part = strategies.RunningTopK(25)
        mine = keys % 4 == index
        for start in range(0, 1000, 60):  # in chunks, as a stream comes
            chunk = slice(start, start + 60)
            part.push(keys[chunk][mine[chunk]], priority[chunk][mine[chunk]], tie[chunk][mine[chunk]])
        parts.append(part)
    merged = strategies.RunningTopK.merge(parts, 25)
    assert [a.tolist() for a in merged.best_first()] == [a.tolist() for a in whole.best_first()]
    assert merged.seen == 1000


def test_replica_settings_are_checked():
    assert scorer_address_list(" a:1, b:2,,") == ["a:1", "b:2"]
    with pytest.raises(errors.InvalidArgument, match="at least one scorer"):
        ScorerReplicas([])
    with pytest.raises(errors.InvalidArgument, match="score attempts must be at least 1"):
        ScorerReplicas([object()], attempts=0)  # type: ignore[list-item]
    with pytest.raises(errors.InvalidArgument, match="score shards must be in 0..4096"):
        ScorerReplicas([object()], shards=-1)  # type: ignore[list-item]
    assert ScorerReplicas([object(), object()]).shard_count == 2  # type: ignore[list-item]
    assert ScorerReplicas([object()], shards=4).shard_count == 4  # type: ignore[list-item]


def test_each_replica_embeds_for_the_fast_head_the_shard_it_scores(big, replicas):
    # The fast head's scoring is sharded like a round's (shard i on replica i), and each replica
    # keeps its own embeddings: so each embeds its own shard ahead, and all together the whole pool.
    total = ScorerReplicas(replicas).embed_pool("big", base_model="m")
    assert [[c["shard"] for c in r.embed_calls] for r in replicas] == [[Shard(i, 3)] for i in range(3)]
    assert total.done == total.total == total.computed == TRAIN
    one = ScorerReplicas(replicas[:1]).embed_pool("big")
    assert replicas[0].embed_calls[-1] == {"dataset": "big", "base_model": "", "shard": None}
    assert one.done == TRAIN
