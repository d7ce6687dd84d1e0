"""Query and seed strategies: pure, vectorised functions from arrays to selected indices.

Every query strategy has the same signature::

    strategy(k, *, probs=None, embeddings=None, exclude=None, rng=None) -> Selection

``probs`` is ``[n_samples, n_classes]`` (rows sum to 1), ``embeddings`` ``[n_samples, dim]``,
``exclude`` a boolean mask ``[n_samples]`` (True = already labelled, never selected) or an index
array. The result holds at most ``k`` unique positions into those arrays, best first, and the
strategy's score for each (higher = chosen earlier). Asking for more than the allowed samples
returns all of them. The same inputs and ``rng`` seed always give the same selection.

A round of a run does not hold the whole pool: ``NEEDS`` says what each strategy needs of the
scorer per candidate (one of the scorer's uncertainty columns, never whole probability rows),
``RunningTopK`` keeps the best candidates while the scores stream in, in exactly the order
``_top_k`` gives, and ``cluster_candidates`` picks the diverse batch from the kept candidates'
embeddings alone.

No torch here, no gRPC: the uncertainty math is ``lesslabels.common.uncertainty``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from lesslabels.common import uncertainty

__all__ = [
    "Selection",
    "ScoreNeeds",
    "NEEDS",
    "RunningTopK",
    "cluster_candidates",
    "QUERY_STRATEGIES",
    "SEED_STRATEGIES",
    "select",
    "select_seed",
    "kmeans",
    "kmeans_pp",
    "entropy_strategy",
    "margin_strategy",
    "least_confidence_strategy",
    "ratio_strategy",
    "random_strategy",
    "clustered_entropy_strategy",
    "clustered_margin_strategy",
    "random_seed_strategy",
    "diverse_seed_strategy",
]

#: Candidates clustered by the clustered-entropy strategy: this many times the batch size.
CANDIDATE_FACTOR = 10


@dataclasses.dataclass(frozen=True)
class Selection:
    indices: np.ndarray  # [k] int64 positions, best first, unique
    scores: np.ndarray  # [k] float64, the strategy's score (higher = chosen earlier)

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _allowed(n: int, exclude) -> np.ndarray:
    """Boolean mask ``[n]`` of selectable positions."""
    allowed = np.ones(n, dtype=bool)
    if exclude is None:
        return allowed
    exclude = np.asarray(exclude)
    if exclude.dtype == bool:
        if exclude.shape != (n,):
            raise ValueError(f"exclude mask has shape {exclude.shape}, expected ({n},)")
        return ~exclude
    idx = exclude.astype(np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"exclude index out of range 0..{n - 1}")
    allowed[idx] = False
    return allowed


def _check_k(k: int) -> int:
    k = int(k)
    if k < 0:
        raise ValueError(f"cannot select a negative number of samples ({k})")
    return k


def _top_k(priority: np.ndarray, allowed: np.ndarray, k: int, *tie_breakers: np.ndarray) -> np.ndarray:
    """Positions of the ``k`` highest ``priority`` among ``allowed``; ties broken by each
    ``tie_breakers`` (higher first), then by position (lower first) so the order is total."""
    candidates = np.flatnonzero(allowed)  # [m]
    if k == 0 or candidates.size == 0:
        return np.empty(0, dtype=np.int64)
    # np.lexsort sorts by the last key first, ascending: negate to get "higher first".
    keys = [candidates] + [-t[candidates] for t in reversed(tie_breakers)] + [-priority[candidates]]
    order = np.lexsort(keys)
    return candidates[order[:k]].astype(np.int64)


class RunningTopK:
    """The ``capacity`` best rows of a stream of chunks, in the order of ``_top_k``: highest
    ``priority`` first, ties to the higher ``tie_breaker``, then to the lower key (the sample id,
    which grows in pool order as positions do), so the result equals ``_top_k`` over the whole
    stream. Each chunk costs one ``np.argpartition`` over the kept rows and the chunk; memory is
    O(capacity + chunk), whatever the length of the stream. NaN scores rank last, as in ``_top_k``."""

    def __init__(self, capacity: int):
        self.capacity = _check_k(capacity)
        self.keys = np.empty(0, dtype=np.int64)  # [m]
        self.priority = np.empty(0)  # [m]
        self.tie_breaker = np.empty(0)  # [m]
        self.seen = 0

    def push(self, keys, priority, tie_breaker) -> None:
        keys = np.asarray(keys, dtype=np.int64)  # [n]
        self.seen += int(keys.size)
        if self.capacity == 0 or keys.size == 0:
            return
        all_keys = np.concatenate([self.keys, keys])
        all_priority = np.concatenate([self.priority, _nan_last(priority)])
        all_tie = np.concatenate([self.tie_breaker, _nan_last(tie_breaker)])
        if all_keys.size > self.capacity:
            keep = _best_unordered(all_priority, all_tie, all_keys, self.capacity)
            all_keys, all_priority, all_tie = all_keys[keep], all_priority[keep], all_tie[keep]
        self.keys, self.priority, self.tie_breaker = all_keys, all_priority, all_tie

    @classmethod
    def merge(cls, parts: Sequence[RunningTopK], capacity: int) -> RunningTopK:
        """The best ``capacity`` rows of several running top-ks over disjoint streams (the shards
        of a pool): equal to one running top-k over all of them, since each part kept its own best
        ``capacity`` in the same total order."""
        merged = cls(capacity)
        for part in parts:
            merged.push(part.keys, part.priority, part.tie_breaker)
        merged.seen = sum(part.seen for part in parts)
        return merged

    def best_first(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keys [m], priority [m])`` of the kept rows, best first (m <= capacity)."""
        order = np.lexsort((self.keys, -self.tie_breaker, -self.priority))
        return self.keys[order], self.priority[order]


def _nan_last(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(v), -np.inf, v)


def _best_unordered(priority: np.ndarray, tie: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best rows (as ``_top_k`` ranks them), in no particular order."""
    kth = np.argpartition(-priority, k - 1)[k - 1]
    threshold = priority[kth]  # the k-th highest priority
    above = np.flatnonzero(priority > threshold)  # fewer than k: all of them are in
    tied = np.flatnonzero(priority == threshold)  # the rest comes from these, by tie-breaker then key
    need = k - above.size
    if tied.size > need:
        tied = tied[np.lexsort((keys[tied], -tie[tied]))[:need]]
    return np.concatenate([above, tied])


def _probs(probs) -> np.ndarray:
    if probs is None:
        raise ValueError("this strategy needs class probabilities")
    return uncertainty.as_probabilities(probs)  # [n, c]


def _uncertainty_strategy(score_fn: Callable[[np.ndarray], np.ndarray]):
    def strategy(k, *, probs=None, embeddings=None, exclude=None, rng=None) -> Selection:
        p = _probs(probs)  # [n, c]
        k = _check_k(k)
        score = score_fn(p)  # [n], higher = more uncertain
        # Ties (e.g. identical rows) go to the higher entropy, then to the lower position.
        chosen = _top_k(score, _allowed(p.shape[0], exclude), k, uncertainty.entropy(p))
        return Selection(chosen, score[chosen])

    return strategy


entropy_strategy = _uncertainty_strategy(uncertainty.entropy)
least_confidence_strategy = _uncertainty_strategy(uncertainty.least_confidence)
ratio_strategy = _uncertainty_strategy(uncertainty.ratio)
# Smallest margin first, so the priority is the negated margin; ties broken by entropy.
margin_strategy = _uncertainty_strategy(lambda p: -uncertainty.margin(p))
margin_strategy.__doc__ = "Smallest best-minus-second margin first; score is -margin; ties by entropy."


def _n_samples(probs, embeddings) -> int:
    for arr in (probs, embeddings):
        if arr is not None:
            return int(np.asarray(arr).shape[0])
    raise ValueError("random selection needs probs or embeddings to know the pool size")


def random_strategy(k, *, probs=None, embeddings=None, exclude=None, rng=None) -> Selection:
    """Uniformly at random among the allowed positions; scores are 0."""
    k = _check_k(k)
    n = _n_samples(probs, embeddings)
    candidates = np.flatnonzero(_allowed(n, exclude))  # [m]
    take = min(k, candidates.size)
    chosen = _rng(rng).choice(candidates, size=take, replace=False).astype(np.int64)
    return Selection(chosen, np.zeros(take))


def kmeans(x: np.ndarray, k: int, *, rng=None, iterations: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """k-means with k-means++ initialisation: scipy's ``kmeans2`` from ``kmeans_pp`` centroids.

    ``x`` is ``[n, d]``; returns ``(centroids [k', d], assignment [n])``. ``k`` is capped at the
    number of distinct points (k' <= k), so no cluster starts empty. Deterministic under ``rng``.
    """
    from scipy.cluster.vq import kmeans2

    rng = _rng(rng)
    x = np.asarray(x, dtype=np.float64)  # [n, d]
    n = x.shape[0]
    k = min(int(k), n)
    if k <= 0:
        return np.empty((0, x.shape[1])), np.zeros(n, dtype=np.int64)
    k = min(k, np.unique(x, axis=0).shape[0])  # ++ init cannot place more centroids than distinct points
    if k == 1:
        return x.mean(axis=0, keepdims=True), np.zeros(n, dtype=np.int64)
    with warnings.catch_warnings():  # an empty cluster keeps its centroid, as intended: no warning
        warnings.simplefilter("ignore", UserWarning)
        centroids, assignment = kmeans2(x, kmeans_pp(x, k, rng), iter=iterations, minit="matrix", missing="warn")
    return centroids, assignment.astype(np.int64)


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007): the draws of scipy's ``kmeans2(minit="++")``
    from the same ``rng``, in O(k n d) instead of O(k^2 n d).

    scipy recomputes every point's distance to all centroids so far at each of the k steps: with
    k = 900 (a batch of 6 % of CLINC150's pool) over 9,000 candidates that took over 20 minutes.
    Keeping each point's squared distance to its nearest centroid, updated with the newest one,
    gives the same numbers (the same pairwise distances, the same minimum) and the same picks.
    """
    from scipy.spatial.distance import cdist

    centroids = np.empty((k, x.shape[1]))  # [k, d]
    centroids[0] = x[rng.integers(x.shape[0], dtype=np.int64)]
    nearest = cdist(centroids[:1], x, metric="sqeuclidean")[0]  # [n]
    for i in range(1, k):
        cumulative = np.cumsum(nearest / nearest.sum())
        centroids[i] = x[int(np.searchsorted(cumulative, rng.uniform()))]
        np.minimum(nearest, cdist(centroids[i : i + 1], x, metric="sqeuclidean")[0], out=nearest)
    return centroids


def _normalise(embeddings) -> np.ndarray:
    if embeddings is None:
        raise ValueError("this strategy needs embeddings")
    e = np.asarray(embeddings, dtype=np.float64)  # [n, d]
    if e.ndim != 2:
        raise ValueError(f"embeddings must be 2-D [n_samples, dim], got shape {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)  # [n, 1]
    return e / np.where(norms > 0, norms, 1.0)


def cluster_candidates(keys, scores, embeddings, k: int, *, rng=None) -> Selection:
    """The diverse batch of ``k`` out of candidates already ranked best first: k-means (k clusters)
    over their embeddings, the best candidate of each cluster; clusters that come out empty are made
    up for with the next best candidates. ``keys`` [m] identify the candidates (positions, or sample
    ids in pool order: ties go to the lower key), ``scores`` [m] their scores, ``embeddings``
    [m, d] theirs; the result holds keys, best first."""
    keys = np.asarray(keys, dtype=np.int64)  # [m], best first
    scores = np.asarray(scores, dtype=np.float64)  # [m]
    k = _check_k(k)
    if keys.size <= k:
        return Selection(keys, scores)
    e = _normalise(embeddings)  # [m, d]
    if e.shape[0] != keys.size:
        raise ValueError(f"{keys.size} candidates but {e.shape[0]} embeddings")
    _, assignment = kmeans(e, k, rng=rng)  # [m]
    # Candidates are sorted by score, so the first candidate of each cluster is its most uncertain.
    _, first = np.unique(assignment, return_index=True)
    picked = np.sort(first)  # positions into keys
    if picked.size < k:
        rest = np.setdiff1d(np.arange(keys.size), picked, assume_unique=True)
        rest = rest[np.argsort(keys[rest], kind="stable")]
        rest = rest[np.argsort(-scores[rest], kind="stable")]
        picked = np.concatenate([picked, rest[: k - picked.size]])
    picked = picked[np.lexsort((keys[picked], -scores[picked]))]
    return Selection(keys[picked], scores[picked])


def _clustered_strategy(score_fn: Callable[[np.ndarray], np.ndarray], name: str):
    def strategy(k, *, probs=None, embeddings=None, exclude=None, rng=None) -> Selection:
        p = _probs(probs)  # [n, c]
        k = _check_k(k)
        e = _normalise(embeddings)  # [n, d]
        if e.shape[0] != p.shape[0]:
            raise ValueError(f"{p.shape[0]} probability rows but {e.shape[0]} embeddings")
        score = score_fn(p)  # [n], higher = more uncertain
        allowed = _allowed(p.shape[0], exclude)
        candidates = _top_k(score, allowed, CANDIDATE_FACTOR * k, uncertainty.entropy(p))  # [m], by score
        # The raw rows: cluster_candidates normalises them (normalising twice would move the last bits).
        return cluster_candidates(candidates, score[candidates], np.asarray(embeddings)[candidates], k, rng=rng)

    strategy.__name__ = f"clustered_{name}_strategy"
    strategy.__doc__ = (
        f"Uncertainty plus diversity: k-means (k clusters) over the embeddings of the "
        f"``CANDIDATE_FACTOR * k`` most uncertain candidates by {name}, then the most uncertain sample of "
        f"each cluster, so a large batch is not made of near-duplicates. Clusters that come out empty "
        f"are made up for with the next most uncertain candidates. Scores are the {name} scores. "
        f"After Zhdanov 2019 (Diverse mini-batch Active Learning: pre-filter the most informative "
        f"samples, k-means with k clusters over them); with margin, close to Cluster-Margin "
        f"(Citovsky et al. 2021)."
    )
    return strategy


clustered_entropy_strategy = _clustered_strategy(uncertainty.entropy, "entropy")
# With many classes the entropy of a row is spread over classes the sample is not near; the
# margin between the two best classes looks only at the decision the model is unsure about.
clustered_margin_strategy = _clustered_strategy(lambda p: -uncertainty.margin(p), "margin")


QUERY_STRATEGIES: dict[str, Callable[..., Selection]] = {
    "entropy": entropy_strategy,
    "margin": margin_strategy,
    "least_confidence": least_confidence_strategy,
    "ratio": ratio_strategy,
    "random": random_strategy,
    "clustered_entropy": clustered_entropy_strategy,
    "clustered_margin": clustered_margin_strategy,
}


@dataclasses.dataclass(frozen=True)
class ScoreNeeds:
    """What a query strategy needs of the scorer, so that a round asks for no more.

    ``priority`` names the scorer's per-row uncertainty the strategy ranks by (``TextScore``'s
    entropy, margin, least_confidence or ratio, which the scorer computes with the same functions
    from the probabilities it would send; ``negate`` for smallest first), ties going to the higher
    entropy as in the strategy itself; "" for none (random). ``keep`` candidates per selected
    sample are kept while the pool streams in, and ``embeddings`` are asked for those kept
    candidates only. No strategy needs whole probability rows (c floats per sample), so a round
    never asks for them."""

    priority: str = ""
    negate: bool = False
    keep: int = 1
    embeddings: bool = False

    def priority_of(self, scores: Uncertainty) -> np.ndarray:
        """The strategy's score per row (higher = chosen earlier) from the scorer's uncertainty."""
        values = np.asarray(getattr(scores, self.priority), dtype=np.float64)  # [n]
        return -values if self.negate else values


class Uncertainty(Protocol):
    """The scorer's per-row uncertainty columns, each [n] (``lesslabels.contract.Uncertainty``)."""

    @property
    def entropy(self) -> np.ndarray: ...

    @property
    def margin(self) -> np.ndarray: ...

    @property
    def least_confidence(self) -> np.ndarray: ...

    @property
    def ratio(self) -> np.ndarray: ...


#: Query strategy -> what it needs of the scorer (tests/unit/coordinator/test_strategies.py holds each to the strategy itself).
NEEDS: dict[str, ScoreNeeds] = {
    "entropy": ScoreNeeds("entropy"),
    "margin": ScoreNeeds("margin", negate=True),
    "least_confidence": ScoreNeeds("least_confidence"),
    "ratio": ScoreNeeds("ratio"),
    "random": ScoreNeeds(),
    "clustered_entropy": ScoreNeeds("entropy", keep=CANDIDATE_FACTOR, embeddings=True),
    "clustered_margin": ScoreNeeds("margin", negate=True, keep=CANDIDATE_FACTOR, embeddings=True),
}


def select(name: str, k: int, *, probs=None, embeddings=None, exclude=None, rng=None) -> Selection:
    try:
        strategy = QUERY_STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(QUERY_STRATEGIES)}") from None
    return strategy(k, probs=probs, embeddings=embeddings, exclude=exclude, rng=rng)


# --- seed (cold-start) selection: no model yet, only the pool and pretrained embeddings ---


def random_seed_strategy(k, *, n_samples: int | None = None, embeddings=None, exclude=None, rng=None) -> Selection:
    """``k`` positions uniformly at random out of ``n_samples`` (or ``len(embeddings)``)."""
    k = _check_k(k)
    n = int(n_samples) if n_samples is not None else _n_samples(None, embeddings)
    candidates = np.flatnonzero(_allowed(n, exclude))
    take = min(k, candidates.size)
    chosen = _rng(rng).choice(candidates, size=take, replace=False).astype(np.int64)
    return Selection(chosen, np.zeros(take))


def diverse_seed_strategy(k, *, n_samples: int | None = None, embeddings=None, exclude=None, rng=None) -> Selection:
    """k-means with ``k`` clusters over the (L2-normalised) pretrained-encoder embeddings; the
    sample nearest each centroid. Where two centroids share a nearest sample, the later one takes
    its nearest sample not yet chosen. Scores are cosine similarities to the centroid."""
    k = _check_k(k)
    e = _normalise(embeddings)  # [n, d]
    candidates = np.flatnonzero(_allowed(e.shape[0], exclude))  # [m]
    if k == 0 or candidates.size == 0:
        return Selection(np.empty(0, dtype=np.int64), np.empty(0))
    if candidates.size <= k:
        return Selection(candidates.astype(np.int64), np.ones(candidates.size))
    x = e[candidates]  # [m, d]
    centroids, _ = kmeans(x, k, rng=rng)  # [k', d]
    dist = (
        np.einsum("md,md->m", x, x)[:, None]
        - 2 * x @ centroids.T
        + np.einsum("kd,kd->k", centroids, centroids)[None, :]
    )  # [m, k']
    taken = np.zeros(candidates.size, dtype=bool)
    picked: list[int] = []
    picked_scores: list[float] = []
    for j in range(centroids.shape[0]):
        column = np.where(taken, np.inf, dist[:, j])
        best = int(column.argmin())
        taken[best] = True
        picked.append(best)
        norm = np.linalg.norm(centroids[j]) or 1.0
        picked_scores.append(float(x[best] @ centroids[j] / norm))
    chosen = np.asarray(picked, dtype=np.int64)
    scores = np.asarray(picked_scores)
    if chosen.size < k:  # fewer distinct points than clusters: fill at random
        rest = _rng(rng).permutation(np.flatnonzero(~taken))[: k - chosen.size]
        chosen = np.concatenate([chosen, rest])
        scores = np.concatenate([scores, np.zeros(rest.size)])
    return Selection(candidates[chosen].astype(np.int64), scores)


SEED_STRATEGIES: dict[str, Callable[..., Selection]] = {
    "random": random_seed_strategy,
    "diverse": diverse_seed_strategy,
}


def select_seed(
    name: str, k: int, *, n_samples: int | None = None, embeddings=None, exclude=None, rng=None
) -> Selection:
    try:
        strategy = SEED_STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown seed strategy {name!r}; choose from {', '.join(SEED_STRATEGIES)}") from None
    return strategy(k, n_samples=n_samples, embeddings=embeddings, exclude=exclude, rng=rng)
