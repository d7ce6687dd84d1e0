"""Seed sets drawn in the pool: the random seed set is the pool's seeded RandomSubset of
k ids (the pool sends k samples, never the whole pool); the diverse seed set embeds at most
``steps.diverse_seed_sample(k)`` samples, a random subset, when the pool is larger than that.
Over the real pool (gRPC, temp SQLite) with the fake scorer that records what it scored."""

from __future__ import annotations


from lesslabels.client import PoolClient
from lesslabels import contract
from lesslabels.contract import vocabulary
from lesslabels.coordinator import steps
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.coordinator.scores import seed_set_seed
from tests.helpers import BIG_TRAIN
from tests.stack import wait_for_state

TRAIN = BIG_TRAIN
SEED, BATCH = 8, 6


class RecordingPool:
    """The public pool client the coordinator uses, recording every ``list_samples`` call."""

    def __init__(self, address: str):
        self.inner = PoolClient(address, timeout=10)
        self.listings: list[dict] = []

    def list_samples(self, dataset: str, **kwargs):
        samples = self.inner.list_samples(dataset, **kwargs)
        self.listings.append(dict(kwargs, dataset=dataset, returned=len(samples)))
        return samples

    def __getattr__(self, name):
        return getattr(self.inner, name)


def config(**overrides) -> contract.RunConfig:
    base = dict(
        dataset="big",
        seed_size=contract.Amount(count=SEED),
        batch_size=contract.Amount(count=BATCH),
        stopping=contract.StoppingRule(max_rounds=1),
        random_seed=7,
        strategy="entropy",
    )
    base.update(overrides)
    return contract.RunConfig(**base)


def _seed_set(stack, run_id: int) -> list[int]:
    return sorted(a.sample_id for a in RunStoreClient(stack.pool_address, timeout=10).list_acquisitions(run_id, 0))


def test_the_random_seed_set_is_the_pools_random_subset_of_k_ids(big):
    pool = RecordingPool(big.pool_address)
    core = big.coordinator(pool)
    runs = [core.start_run(config()), core.start_run(config()), core.start_run(config(random_seed=8))]
    for run in runs:
        assert (
            wait_for_state(RunStoreClient(big.pool_address, timeout=10), run.id, vocabulary.FINAL_RUN_STATES).state
            == "COMPLETED"
        )
    # One listing per run, of k ids: the pool never sent the whole pool for a seed set.
    assert [(c["subset"], c["returned"]) for c in pool.listings] == [(SEED, SEED)] * 3
    # The three runs seed concurrently, so their listings arrive in any order.
    assert sorted(c["subset_seed"] for c in pool.listings) == sorted(
        [seed_set_seed(7), seed_set_seed(7), seed_set_seed(8)]
    )
    with PoolClient(big.pool_address, timeout=10) as sdk:
        expected = [s.id for s in sdk.list_samples("big", split="train", subset=SEED, subset_seed=seed_set_seed(7))]
    assert _seed_set(big, runs[0].id) == _seed_set(big, runs[1].id) == expected
    assert _seed_set(big, runs[2].id) != expected and len(_seed_set(big, runs[2].id)) == SEED


def test_the_diverse_seed_set_embeds_no_more_than_its_bound_of_a_larger_pool(big, monkeypatch):
    monkeypatch.setattr(steps, "DIVERSE_SAMPLE_FLOOR", 50)
    bound = steps.diverse_seed_sample(SEED)
    assert bound == 20 * SEED < TRAIN
    pool = RecordingPool(big.pool_address)
    run = big.coordinator(pool).start_run(config(seed_strategy="diverse", strategy="clustered_entropy"))
    assert (
        wait_for_state(RunStoreClient(big.pool_address, timeout=10), run.id, vocabulary.FINAL_RUN_STATES).state
        == "COMPLETED"
    )
    [embedded] = [c for c in big.scorer.calls if c["base_model"] is not None]
    assert embedded["embeddings"] and embedded["subset"] == bound and embedded["subset_seed"] == seed_set_seed(7)
    assert len(embedded["scored"]) == bound, "the coordinator embedded more of the pool than the bound"
    seed_set = _seed_set(big, run.id)
    assert len(seed_set) == SEED and set(seed_set) <= set(embedded["scored"])
    assert pool.listings == []  # the diverse seed set lists no ids itself


def test_the_diverse_seed_set_embeds_a_pool_within_its_bound_whole(big):
    assert steps.diverse_seed_sample(SEED) == steps.DIVERSE_SAMPLE_FLOOR > TRAIN
    run = big.coordinator().start_run(config(seed_strategy="diverse", strategy="clustered_entropy"))
    assert (
        wait_for_state(RunStoreClient(big.pool_address, timeout=10), run.id, vocabulary.FINAL_RUN_STATES).state
        == "COMPLETED"
    )
    [embedded] = [c for c in big.scorer.calls if c["base_model"] is not None]
    assert embedded["subset"] == 0 and len(embedded["scored"]) == TRAIN
