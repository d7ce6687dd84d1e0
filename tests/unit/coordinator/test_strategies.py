"""Query and seed strategies: one contract suite for all of them, then hand-computed selections."""

from __future__ import annotations

import numpy as np
import pytest

from lesslabels.coordinator import strategies as s

N, C, D = 60, 4, 8


def _pool(seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, C)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # [N, C]
    embeddings = rng.normal(size=(N, D))  # [N, D]
    return probs, embeddings


def _query(name):
    def run(k, exclude=None, rng=0, probs=None, embeddings=None):
        p, e = _pool()
        return s.select(
            name,
            k,
            probs=p if probs is None else probs,
            embeddings=e if embeddings is None else embeddings,
            exclude=exclude,
            rng=rng,
        )

    return run


def _seed(name):
    def run(k, exclude=None, rng=0, probs=None, embeddings=None):
        _, e = _pool()
        e = e if embeddings is None else embeddings
        return s.select_seed(name, k, n_samples=e.shape[0], embeddings=e, exclude=exclude, rng=rng)

    return run


ALL = [pytest.param(_query(n), id=f"query-{n}") for n in s.QUERY_STRATEGIES] + [
    pytest.param(_seed(n), id=f"seed-{n}") for n in s.SEED_STRATEGIES
]


# ---------------------------------------------------------------- the shared contract


@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize("k", [1, 7, 20])
def test_valid_unique_indices_of_the_right_count(strategy, k):
    sel = strategy(k)
    assert sel.indices.dtype == np.int64
    assert len(sel) == k
    assert sel.scores.shape == (k,)
    assert len(set(sel.indices.tolist())) == k
    assert sel.indices.min() >= 0 and sel.indices.max() < N


@pytest.mark.parametrize("strategy", ALL)
def test_count_larger_than_pool_returns_every_allowed_sample(strategy):
    exclude = np.zeros(N, dtype=bool)
    exclude[:50] = True
    sel = strategy(N * 3, exclude=exclude)
    assert sorted(sel.indices.tolist()) == list(range(50, N))


@pytest.mark.parametrize("strategy", ALL)
def test_zero_count_and_fully_excluded_pool_give_empty_selection(strategy):
    assert len(strategy(0)) == 0
    assert len(strategy(5, exclude=np.ones(N, dtype=bool))) == 0


@pytest.mark.parametrize("strategy", ALL)
def test_negative_count_is_refused(strategy):
    with pytest.raises(ValueError, match="negative"):
        strategy(-1)


@pytest.mark.parametrize("strategy", ALL)
def test_deterministic_under_seed(strategy):
    first, again = strategy(10, rng=123), strategy(10, rng=123)
    np.testing.assert_array_equal(first.indices, again.indices)
    np.testing.assert_array_equal(first.scores, again.scores)


@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize("as_mask", [True, False])
def test_already_labelled_samples_are_never_selected(strategy, as_mask):
    labelled = np.arange(0, N, 3)  # every third sample
    exclude = np.isin(np.arange(N), labelled) if as_mask else labelled
    sel = strategy(15, exclude=exclude)
    assert len(sel) == 15
    assert not set(sel.indices.tolist()) & set(labelled.tolist())


@pytest.mark.parametrize("strategy", ALL)
def test_bad_exclude_is_refused(strategy):
    with pytest.raises(ValueError, match="exclude"):
        strategy(3, exclude=np.zeros(N + 1, dtype=bool))
    with pytest.raises(ValueError, match="out of range"):
        strategy(3, exclude=np.array([N]))


def test_random_strategies_depend_on_the_seed():
    a = s.select("random", 10, probs=_pool()[0], rng=1).indices
    b = s.select("random", 10, probs=_pool()[0], rng=2).indices
    assert not np.array_equal(a, b)


def test_unknown_strategy_names_are_refused():
    with pytest.raises(ValueError, match="unknown strategy 'bald'"):
        s.select("bald", 1, probs=_pool()[0])
    with pytest.raises(ValueError, match="unknown seed strategy 'kcenter'"):
        s.select_seed("kcenter", 1, n_samples=3)


def test_strategies_that_need_inputs_say_so():
    with pytest.raises(ValueError, match="probabilities"):
        s.select("entropy", 1)
    with pytest.raises(ValueError, match="embeddings"):
        s.select("clustered_entropy", 1, probs=_pool()[0])
    with pytest.raises(ValueError, match="embeddings"):
        s.select_seed("diverse", 1, n_samples=4)


# ---------------------------------------------------------------- hand-computed selections

# Row by row: entropy, margin (best - second), least confidence, ratio (second / best).
HAND = np.array(
    [
        [0.90, 0.05, 0.05],  # 0: confident
        [0.40, 0.35, 0.25],  # 1: flat-ish; margin .05, lc .60, ratio .875
        [0.50, 0.50, 0.00],  # 2: two-way tie; margin 0, lc .50, ratio 1, H = ln 2 = .693
        [1 / 3, 1 / 3, 1 / 3],  # 3: uniform; margin 0, lc .667, ratio 1, H = ln 3 = 1.099
        [0.60, 0.30, 0.10],  # 4: margin .30, lc .40, ratio .5
    ]
)


def test_entropy_hand_computed():
    # H: 0 -> .394, 1 -> 1.080, 2 -> .693, 3 -> 1.099, 4 -> .898
    sel = s.select("entropy", 3, probs=HAND)
    assert sel.indices.tolist() == [3, 1, 4]
    np.testing.assert_allclose(sel.scores, [np.log(3), 1.0805, 0.8979], atol=1e-4)


def test_margin_breaks_ties_by_entropy():
    # Rows 2 and 3 both have margin 0; row 3 has the higher entropy so it comes first.
    assert s.select("margin", 3, probs=HAND).indices.tolist() == [3, 2, 1]
    swapped = HAND[[0, 1, 3, 2, 4]]  # the tie no longer follows position order
    assert s.select("margin", 2, probs=swapped).indices.tolist() == [2, 3]
    np.testing.assert_allclose(s.select("margin", 3, probs=HAND).scores, [0.0, 0.0, -0.05], atol=1e-12)


def test_least_confidence_hand_computed():
    # 1 - max p: .10, .60, .50, .667, .40
    sel = s.select("least_confidence", 5, probs=HAND)
    assert sel.indices.tolist() == [3, 1, 2, 4, 0]
    np.testing.assert_allclose(sel.scores, [2 / 3, 0.6, 0.5, 0.4, 0.1])


def test_ratio_hand_computed():
    # second / best: .056, .875, 1, 1, .5; the tie 2/3 goes to the higher entropy (3).
    assert s.select("ratio", 4, probs=HAND).indices.tolist() == [3, 2, 1, 4]


def test_clustered_entropy_takes_the_most_uncertain_of_each_cluster():
    # Two tight clusters of embeddings; cluster A holds the three most uncertain samples.
    # Plain entropy would take two from A; the clustered strategy takes the best of A and of B.
    probs = np.array(
        [
            [0.34, 0.33, 0.33],  # 0 A  highest entropy
            [0.35, 0.33, 0.32],  # 1 A
            [0.36, 0.34, 0.30],  # 2 A
            [0.60, 0.30, 0.10],  # 3 B  most uncertain of B
            [0.80, 0.10, 0.10],  # 4 B
            [0.98, 0.01, 0.01],  # 5 B
        ]
    )
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    embeddings = np.stack([a, a * 1.01, a + [0, 0.01], b, b * 0.99, b + [0.01, 0]])
    assert s.select("entropy", 2, probs=probs).indices.tolist() == [0, 1]
    for seed in range(5):
        sel = s.select("clustered_entropy", 2, probs=probs, embeddings=embeddings, rng=seed)
        assert sel.indices.tolist() == [0, 3]


def test_clustered_entropy_fills_up_when_candidates_are_duplicates():
    probs = np.tile([[0.5, 0.3, 0.2]], (30, 1)) + np.linspace(0, 0.01, 30)[:, None] * [1, -1, 0]
    embeddings = np.ones((30, 4))  # every point the same: one distinct cluster
    sel = s.select("clustered_entropy", 5, probs=probs, embeddings=embeddings, rng=0)
    assert len(set(sel.indices.tolist())) == 5


def test_diverse_seed_takes_one_sample_per_cluster():
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 10  # four well separated clusters of 25 points each
    x = np.concatenate([c + rng.normal(scale=0.1, size=(25, 4)) for c in centres])
    sel = s.select_seed("diverse", 4, embeddings=x, rng=0)
    assert sorted((sel.indices // 25).tolist()) == [0, 1, 2, 3]
    assert s.select_seed("random", 4, n_samples=100, rng=0).indices.tolist() != sel.indices.tolist()


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(loc=m, scale=0.05, size=(20, 2)) for m in (0.0, 5.0, 10.0)])
    centroids, assignment = s.kmeans(x, 3, rng=0)
    assert sorted(np.round(centroids[:, 0]).tolist()) == [0.0, 5.0, 10.0]
    for block in range(3):
        assert len(set(assignment[block * 20 : (block + 1) * 20].tolist())) == 1


def test_clustered_margin_takes_the_smallest_margin_of_each_cluster():
    # Cluster A holds the two smallest margins (0 and .01); B's smallest is row 3 (.05).
    probs = np.array(
        [
            [0.45, 0.45, 0.10],  # 0 A  margin 0
            [0.40, 0.39, 0.21],  # 1 A  margin .01
            [0.70, 0.20, 0.10],  # 2 A  margin .50
            [0.40, 0.35, 0.25],  # 3 B  margin .05
            [0.80, 0.10, 0.10],  # 4 B  margin .70
            [0.98, 0.01, 0.01],  # 5 B  margin .97
        ]
    )
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    embeddings = np.stack([a, a * 1.01, a + [0, 0.01], b, b * 0.99, b + [0.01, 0]])
    assert s.select("margin", 2, probs=probs).indices.tolist() == [0, 1]
    for seed in range(5):
        sel = s.select("clustered_margin", 2, probs=probs, embeddings=embeddings, rng=seed)
        assert sel.indices.tolist() == [0, 3]
        np.testing.assert_allclose(sel.scores, [0.0, -0.05], atol=1e-12)


# ---------------------------------------------------------------- many classes, few labels


def _blobs(n_blobs: int, per_blob: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """``n_blobs`` well separated Gaussian blobs (blob b = rows b*per_blob ... ) on the unit sphere's scale."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dim)) * 10
    return np.concatenate([c + rng.normal(scale=0.1, size=(per_blob, dim)) for c in centres])


@pytest.mark.parametrize("seed", range(5))
def test_kmeans_on_blobs_finds_every_blob(seed):
    x = _blobs(12, 30, seed=seed)
    centroids, assignment = s.kmeans(x, 12, rng=seed)
    assert centroids.shape == (12, 16) and assignment.shape == (360,) and assignment.dtype == np.int64
    # one cluster per blob: each blob's points share a cluster, and no two blobs share one.
    per_blob = [set(assignment[b * 30 : (b + 1) * 30].tolist()) for b in range(12)]
    assert all(len(c) == 1 for c in per_blob) and len(set().union(*per_blob)) == 12


def test_kmeans_caps_k_at_the_distinct_points():
    x = np.repeat(np.eye(3), 4, axis=0)  # 12 rows, 3 distinct
    centroids, assignment = s.kmeans(x, 8, rng=0)
    assert centroids.shape == (3, 3) and len(set(assignment.tolist())) == 3
    centroids, assignment = s.kmeans(np.ones((5, 2)), 3, rng=0)
    assert centroids.shape == (1, 2) and assignment.tolist() == [0] * 5


def test_kmeans_is_deterministic_under_seed():
    x = np.random.default_rng(3).normal(size=(200, 8))
    a, b, c = (s.kmeans(x, 10, rng=r) for r in (7, 7, 8))
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("k", [5, 12, 20])
def test_diverse_seed_smaller_than_the_classes_covers_one_blob_per_sample(k):
    # 20 "classes" (blobs) of 30 texts: a seed set of k <= 20 should touch k different classes,
    # whatever the seed; random sampling does not (it repeats classes).
    x = _blobs(20, 30)
    for seed in range(5):
        sel = s.select_seed("diverse", k, embeddings=x, rng=seed)
        assert len(set((sel.indices // 30).tolist())) == k, seed
    randoms = [len(set((s.select_seed("random", 12, n_samples=600, rng=r).indices // 30).tolist())) for r in range(5)]
    assert min(randoms) < 12


@pytest.mark.parametrize("name", sorted(s.QUERY_STRATEGIES))
def test_query_strategies_with_more_classes_than_the_batch(name):
    # 150 classes, a batch of 10: valid, unique, never an excluded sample.
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 150))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    embeddings = rng.normal(size=(300, 8))
    exclude = np.arange(0, 300, 3)
    sel = s.select(name, 10, probs=probs, embeddings=embeddings, exclude=exclude, rng=0)
    assert len(sel) == 10 and len(set(sel.indices.tolist())) == 10
    assert not set(sel.indices.tolist()) & set(exclude.tolist())


@pytest.mark.parametrize(("n", "d", "k"), [(300, 8, 1), (300, 8, 2), (500, 16, 40), (1200, 64, 150)])
def test_kmeans_pp_draws_what_scipys_plus_plus_draws(n, d, k):
    """The O(k n d) seeding picks the same centroids as scipy's own (private) ++ seeding."""
    from scipy.cluster import vq

    x = np.random.default_rng(n + k).normal(size=(n, d))
    ours = s.kmeans_pp(x, k, np.random.default_rng(3))
    theirs = vq._kpp(x, k, np.random.default_rng(3), np)
    np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------- streamed selection


def _uncertainty(probs):
    """The scorer's per-row columns, as lesslabels.contract.Uncertainty holds them."""
    from lesslabels.common import uncertainty
    from lesslabels.contract import Uncertainty

    return Uncertainty(*(uncertainty.SCORES[f][0](probs) for f in ("entropy", "margin", "least_confidence", "ratio")))


def _chunks(n: int, rng: np.random.Generator) -> list[slice]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(0, 12))), replace=False))
    bounds = [0, *cuts.tolist(), n]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@pytest.mark.parametrize("trial", range(40))
def test_running_top_k_over_chunks_equals_top_k_over_the_whole_pool(trial):
    rng = np.random.default_rng(trial)
    n = int(rng.integers(1, 400))
    # Few distinct values, so that ties on the priority and on the tie-breaker are common; and NaNs.
    priority = rng.integers(0, 6, size=n).astype(float)
    tie = rng.integers(0, 3, size=n).astype(float)
    priority[rng.random(n) < 0.05] = np.nan
    allowed = rng.random(n) < 0.8
    k = int(rng.integers(0, n + 3))
    ids = np.arange(n) * 3 + 100  # sample ids: growing in pool order, like positions
    top = s.RunningTopK(k)
    for part in _chunks(n, rng):
        mask = allowed[part]
        top.push(ids[part][mask], priority[part][mask], tie[part][mask])
        assert top.keys.size <= k, "more rows kept than the capacity"
    keys, kept_priority = top.best_first()
    expected = s._top_k(priority, allowed, k, tie)  # positions
    assert keys.tolist() == ids[expected].tolist()
    np.testing.assert_array_equal(kept_priority, np.where(np.isnan(priority), -np.inf, priority)[expected])
    assert top.seen == int(allowed.sum())


def test_running_top_k_refuses_a_negative_capacity():
    with pytest.raises(ValueError, match="negative"):
        s.RunningTopK(-1)


@pytest.mark.parametrize("name", sorted(s.NEEDS))
def test_each_strategy_ranks_by_what_it_asks_the_scorer_for(name):
    """NEEDS holds each strategy to its own selection: ranking the scorer's per-row column (no
    probability rows) with the running top-k, then clustering the kept candidates' embeddings,
    selects what the strategy selects from the whole pool."""
    probs, embeddings = _pool(3)
    exclude = np.zeros(N, dtype=bool)
    exclude[[1, 5, 8]] = True
    k = 4
    expected = s.select(name, k, probs=probs, embeddings=embeddings, exclude=exclude, rng=11)
    needs = s.NEEDS[name]
    ids = np.arange(N)
    if not needs.priority:
        chosen = np.random.default_rng(11).choice(ids[~exclude], size=k, replace=False)
        assert chosen.tolist() == expected.indices.tolist()
        return
    columns = _uncertainty(probs)
    top = s.RunningTopK(needs.keep * k)
    for part in _chunks(N, np.random.default_rng(0)):
        keep = ~exclude[part]
        top.push(ids[part][keep], needs.priority_of(columns)[part][keep], columns.entropy[part][keep])
    keys, scores = top.best_first()
    if needs.embeddings:
        got = s.cluster_candidates(keys, scores, embeddings[keys], k, rng=np.random.default_rng(11))
    else:
        got = s.Selection(keys[:k], scores[:k])
    assert got.indices.tolist() == expected.indices.tolist()
    np.testing.assert_array_equal(got.scores, expected.scores)


def test_cluster_candidates_checks_its_embeddings():
    with pytest.raises(ValueError, match="3 candidates but 2 embeddings"):
        s.cluster_candidates(np.arange(3), np.zeros(3), np.ones((2, 4)), 1)
    few = s.cluster_candidates(np.array([7, 3]), np.array([0.9, 0.1]), None, 5)  # no clustering needed
    assert few.indices.tolist() == [7, 3]
