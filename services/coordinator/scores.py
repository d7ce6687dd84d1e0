"""What a round keeps of scoring the pool, between the SCORE and SELECT steps and for the next
round's agreement; scored again (deterministically) when lost with a restart.

A round scores only unlabelled samples: all of them, or with ``RunConfig.candidates`` N a fresh
random subset of N that the pool draws for (run seed, round) (``candidate_seed``), so a restarted
coordinator scores the same subset. Each row comes with the scorer's uncertainty and predicted
label; probability rows are never asked for (every strategy ranks by one of the scorer's per-row
scores, ``strategies.NEEDS``), embeddings only of the candidates a diverse strategy kept. While the
scores stream in, the round keeps only the strategy's best candidates (``strategies.RunningTopK``),
and the random strategy the ids it draws from: memory grows with the candidates kept, not the pool.
With several scorer replicas the round is scored in shards, concurrently
(``sharding.ScorerReplicas``); each shard keeps its own top-k and the merge equals the unsharded one.

Agreement (``StoppingRule.stable_agreement``) compares two rounds' predicted labels on the samples
still unlabelled that both rounds scored, so it is not inflated by the labelled samples the models
were trained on. Without ``candidates`` that is the whole unlabelled pool, which selection scores
anyway: nothing is scored twice, and each round keeps an id and a label index per unlabelled sample
(12 bytes). Fresh random subsets of two rounds barely overlap, so with ``candidates`` N the agreement
is measured on a fixed set instead: the first N unlabelled samples in an order fixed for the run
(``agreement_seed``), scored for predictions only, each round, but only when the run stops on
agreement: a run without that rule does not pay for it, and records no agreement (0).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from lesslabels import contract
from lesslabels.coordinator import metrics, strategies
from lesslabels.coordinator.ports import Progress, RunStorePort, ScorerPort
from lesslabels.coordinator.sharding import ScorerReplicas, as_replicas


def candidate_seed(random_seed: int, round_index: int) -> int:
    """The pool's ``RandomSubset.seed`` of a round's candidates: a fresh subset each round, the same
    one for the same (run seed, round) on every coordinator."""
    return _seed(random_seed, 1, round_index)


def seed_set_seed(random_seed: int) -> int:
    """The pool's ``RandomSubset.seed`` of a run's seed set: the random seed set itself, or the
    samples the diverse seed set embeds."""
    return _seed(random_seed, 3)


def agreement_seed(random_seed: int) -> int:
    """The pool's ``RandomSubset.seed`` of a run's agreement set: the same every round."""
    return _seed(random_seed, 2)


def _seed(*words: int) -> int:
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))  # a non-negative int64


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The predicted label of each sample of a round's agreement set."""

    labels: tuple[str, ...]
    sample_ids: np.ndarray  # [m] int64, unique
    predicted: np.ndarray  # [m] int32, index into labels (-1: a label the scorer did not list)

    def agreement(self, other: Predictions) -> float:
        """Fraction of the samples in both sets with the same predicted label (0 when none are)."""
        index = {label: i for i, label in enumerate(self.labels)}
        # other's label indices as indices into self.labels: -2 for a label self does not list, and
        # -3 for other's -1 (the appended last entry), so that neither ever matches.
        remap = np.array([index.get(label, -2) for label in other.labels] + [-3], dtype=np.int32)
        return metrics.agreement(self.sample_ids, self.predicted, other.sample_ids, remap[other.predicted])


@dataclasses.dataclass(frozen=True)
class RoundScores:
    """What selection and agreement need of a round's scores."""

    candidates: np.ndarray  # [K] int64 sample ids kept for selection, best first (random: all, in pool order)
    scores: np.ndarray  # [K] float64, the strategy's score of each (random: 0)
    scored: int  # samples scored for selection
    predictions: Predictions | None  # on the agreement set; None when agreement is not measured


class _PredictionsBuilder:
    def __init__(self):
        self.labels: tuple[str, ...] = ()
        self._ids: list[np.ndarray] = []
        self._predicted: list[np.ndarray] = []

    def add(self, chunk: contract.PoolScores) -> None:
        if chunk.labels and chunk.labels != self.labels:
            if self.labels:
                raise ValueError(f"the scorer changed its labels mid-stream: {self.labels} then {chunk.labels}")
            self.labels = tuple(chunk.labels)
        index = {label: i for i, label in enumerate(self.labels)}
        self._ids.append(np.asarray(chunk.sample_ids, dtype=np.int64))
        self._predicted.append(
            np.fromiter((index.get(p, -1) for p in chunk.predicted), dtype=np.int32, count=len(chunk.predicted))
        )

    def build(self) -> Predictions:
        ids = np.concatenate(self._ids) if self._ids else np.empty(0, dtype=np.int64)
        predicted = np.concatenate(self._predicted) if self._predicted else np.empty(0, dtype=np.int32)
        return Predictions(self.labels, ids, predicted)

    @staticmethod
    def merge(parts: list[_PredictionsBuilder]) -> Predictions:
        """The predictions of several shards as one set, in id order (each shard's label indices
        are into the same labels: one checkpoint scored them all)."""
        labels = next((part.labels for part in parts if part.labels), ())
        for part in parts:
            if part.labels and part.labels != labels:
                raise ValueError(f"scorer replicas disagree on the labels: {labels} and {part.labels}")
        built = [part.build() for part in parts]
        ids = np.concatenate([b.sample_ids for b in built]) if built else np.empty(0, dtype=np.int64)
        predicted = np.concatenate([b.predicted for b in built]) if built else np.empty(0, dtype=np.int32)
        order = np.argsort(ids, kind="stable")
        return Predictions(labels, ids[order], predicted[order])


@dataclasses.dataclass
class _ShardScores:
    """What one shard of a round's scoring keeps (see ``PoolScoreCache.of_round``)."""

    top: strategies.RunningTopK | None  # the strategy's best candidates of the shard
    every_id: list[np.ndarray]  # the random strategy draws from all of them
    predictions: _PredictionsBuilder | None  # the shard's part of the agreement set
    scored: int = 0


class PoolScoreCache:
    """A round's scores, scored (sharded over the scorer replicas) on first use and kept until forgotten."""

    def __init__(self, runs: RunStorePort, scorer: ScorerPort | ScorerReplicas):
        self.runs = runs
        self.scorer = as_replicas(scorer)
        self._lock = threading.Lock()
        # (run_id, round) -> what the round keeps of its scores, for selection and agreement.
        self._scores: dict[tuple[int, int], RoundScores] = {}

    def of_round(
        self, run: contract.Run, round_index: int, checkpoint_id: str, k: int, progress: Progress | None = None
    ) -> RoundScores:
        """The round's candidates scored by its checkpoint, the best ``strategies.NEEDS[...].keep * k``
        of them kept, and its predictions on the agreement set.

        Scored in shards over the scorer replicas (``ScorerReplicas.map_shards``): each shard keeps
        its own running top-k (and ids, predictions), and the merge of the shards' is what one
        unsharded pass would have kept, whatever the number of shards."""
        key = (run.id, round_index)
        with self._lock:
            cached = self._scores.get(key)
        if cached is not None:
            return cached
        config = run.config
        # Without candidates the round scores the whole unlabelled pool: the agreement set itself.
        with_predictions = not config.candidates
        result = self.score(
            run,
            {"checkpoint": checkpoint_id},
            k,
            subset_seed=candidate_seed(config.random_seed, round_index),
            with_predictions=with_predictions,
            progress=progress,
            what=f"run {run.id} round {round_index}: scoring the pool",
        )
        if not with_predictions and config.stopping.stable_agreement:
            result = dataclasses.replace(result, predictions=self._agreement_set(run, checkpoint_id))
        with self._lock:
            self._scores[key] = result
        return result

    def score(
        self,
        run: contract.Run,
        model: Mapping[str, Any],
        k: int,
        *,
        subset_seed: int,
        with_predictions: bool = False,
        progress: Progress | None = None,
        what: str = "",
    ) -> RoundScores:
        """The run's unacquired candidates scored by ``model`` (the scorer's model options:
        ``checkpoint=...`` or ``fast_head=...``), the strategy's best ``NEEDS[...].keep * k`` kept,
        and, ``with_predictions``, the predictions on what it scored. Not kept here (``of_round`` keeps
        a round's)."""
        config = run.config
        needs = strategies.NEEDS[config.strategy]
        capacity = needs.keep * k
        acquired = np.unique(np.fromiter((a.sample_id for a in self.runs.list_acquisitions(run.id)), dtype=np.int64))

        def fold(chunks: Iterator[contract.PoolScores]) -> _ShardScores:
            kept = _ShardScores(
                top=strategies.RunningTopK(capacity) if needs.priority else None,
                every_id=[],
                predictions=_PredictionsBuilder() if with_predictions else None,
            )
            for chunk in chunks:
                ids = np.asarray(chunk.sample_ids, dtype=np.int64)  # [n]
                kept.scored += int(ids.size)
                if kept.predictions is not None:
                    kept.predictions.add(chunk)
                # Unlabelled samples only are streamed; an acquired one is never selected all the same.
                allowed = ~np.isin(ids, acquired)  # [n]
                if kept.top is not None:
                    if chunk.uncertainty is None:
                        raise ValueError("the scorer sent no uncertainty scores")
                    priority = needs.priority_of(chunk.uncertainty)
                    kept.top.push(ids[allowed], priority[allowed], np.asarray(chunk.uncertainty.entropy)[allowed])
                else:
                    kept.every_id.append(ids[allowed])
            return kept

        shards = self.scorer.map_shards(
            fold,
            what=what or f"run {run.id}: scoring the pool",
            progress=progress,
            samples=contract.SampleQuery(
                config.dataset, run_id=run.id, subset=config.candidates, subset_seed=subset_seed
            ),
            probabilities=False,
            **model,
        )
        if needs.priority:
            top = strategies.RunningTopK.merge([s.top for s in shards if s.top is not None], capacity)
            candidates, scores = top.best_first()
        else:
            # In pool order, as one unsharded stream lists them (the random draw depends on the order).
            candidates = np.sort(np.concatenate([i for s in shards for i in s.every_id] or [np.empty(0, np.int64)]))
            scores = np.zeros(candidates.size)
        agreement_set = (
            _PredictionsBuilder.merge([s.predictions for s in shards if s.predictions is not None])
            if with_predictions
            else None
        )
        return RoundScores(candidates, scores, sum(s.scored for s in shards), agreement_set)

    def previous_predictions(self, run: contract.Run) -> Predictions | None:
        """The previous round's predictions on the agreement set, or None in round 0 (or when the
        run does not measure agreement)."""
        with self._lock:
            cached = self._scores.get((run.id, run.round - 1))
        if cached is not None:
            return cached.predictions
        if run.config.candidates and not run.config.stopping.stable_agreement:
            return None
        previous = {r.index: r for r in self.runs.list_rounds(run.id)}.get(run.round - 1)
        if previous is None or not previous.checkpoint_id:
            return None
        # Lost with a restart: the previous checkpoint scores the agreement set again (deterministic);
        # of the samples it scored then, those still unlabelled are scored again.
        return self._agreement_set(run, previous.checkpoint_id)

    def _agreement_set(self, run: contract.Run, checkpoint_id: str) -> Predictions:
        config = run.config

        def fold(chunks: Iterator[contract.PoolScores]) -> _PredictionsBuilder:
            builder = _PredictionsBuilder()
            for chunk in chunks:
                builder.add(chunk)
            return builder

        parts = self.scorer.map_shards(
            fold,
            what=f"run {run.id}: scoring the agreement set",
            samples=contract.SampleQuery(
                config.dataset, run_id=run.id, subset=config.candidates, subset_seed=agreement_seed(config.random_seed)
            ),
            checkpoint=checkpoint_id,
            probabilities=False,
        )
        return _PredictionsBuilder.merge(parts)

    def forget(self, run_id: int, up_to_round: int) -> None:
        with self._lock:
            for key in [k for k in self._scores if k[0] == run_id and k[1] <= up_to_round]:
                del self._scores[key]
