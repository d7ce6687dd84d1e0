"""What a round keeps of scoring the pool, between the SCORE and SELECT steps and for the next
round's agreement; scored again (deterministically) when lost with a restart.

A round scores only unlabelled samples: all of them, or with ``RunConfig.candidates`` N a fresh
random subset of N that the pool draws for (run seed, round) (``candidate_seed``), so a restarted
coordinator scores the same subset. Each row comes with the scorer's uncertainty and predicted
label; probability rows are never asked for (every strategy ranks by one of the scorer's per-row
scores, ``strategies.NEEDS``), embeddings only of the candidates a diverse strategy kept. While the
scores stream in, the round keeps only the strategy's best candidates (``strategies.RunningTopK``),
and the random strategy the ids it draws from: memory grows with the candidates kept, not the pool.

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

import numpy as np

from lesslabels.coordinator import metrics, model, strategies
from lesslabels.coordinator.ports import PoolPort, Progress, ScorerPort


def candidate_seed(random_seed: int, round_index: int) -> int:
    """The pool's ``RandomSubset.seed`` of a round's candidates: a fresh subset each round, the same
    one for the same (run seed, round) on every coordinator."""
    return _seed(random_seed, 1, round_index)


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

    def add(self, chunk: model.PoolScores) -> None:
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


class PoolScoreCache:
    def __init__(self, pool: PoolPort, scorer: ScorerPort):
        self.pool = pool
        self.scorer = scorer
        self._lock = threading.Lock()
        # (run_id, round) -> what the round keeps of its scores, for selection and agreement.
        self._scores: dict[tuple[int, int], RoundScores] = {}

    def of_round(
        self, run: model.RunInfo, round_index: int, checkpoint_id: str, k: int, progress: Progress | None = None
    ) -> RoundScores:
        """The round's candidates scored by its checkpoint, the best ``strategies.NEEDS[...].keep * k``
        of them kept, and its predictions on the agreement set."""
        key = (run.id, round_index)
        with self._lock:
            cached = self._scores.get(key)
        if cached is not None:
            return cached
        config = run.config
        needs = strategies.NEEDS[config.strategy]
        acquired = np.unique(np.fromiter((a.sample_id for a in self.pool.list_acquisitions(run.id)), dtype=np.int64))
        top = strategies.RunningTopK(needs.keep * k) if needs.priority else None
        every_id: list[np.ndarray] = []  # the random strategy draws from all of them
        # Without candidates the round scores the whole unlabelled pool: the agreement set itself.
        predictions = _PredictionsBuilder() if not config.candidates else None
        scored = 0
        for chunk in self.scorer.iter_pool_scores(
            dataset=config.dataset,
            run_id=run.id,
            checkpoint_id=checkpoint_id,
            split="train",
            probabilities=False,
            subset=config.candidates,
            subset_seed=candidate_seed(config.random_seed, round_index),
            progress=progress,
        ):
            ids = np.asarray(chunk.sample_ids, dtype=np.int64)  # [n]
            scored += int(ids.size)
            if predictions is not None:
                predictions.add(chunk)
            # Unlabelled samples only are streamed; an acquired one is never selected all the same.
            allowed = ~np.isin(ids, acquired)  # [n]
            if top is not None:
                if chunk.uncertainty is None:
                    raise ValueError("the scorer sent no uncertainty scores")
                priority = needs.priority_of(chunk.uncertainty)
                top.push(ids[allowed], priority[allowed], np.asarray(chunk.uncertainty.entropy)[allowed])
            else:
                every_id.append(ids[allowed])
        if top is not None:
            candidates, scores = top.best_first()
        else:
            candidates = np.concatenate(every_id) if every_id else np.empty(0, dtype=np.int64)
            scores = np.zeros(candidates.size)
        if predictions is not None:
            agreement_set: Predictions | None = predictions.build()
        elif config.stopping.stable_agreement:
            agreement_set = self._agreement_set(run, checkpoint_id)
        else:
            agreement_set = None
        result = RoundScores(candidates, scores, scored, agreement_set)
        with self._lock:
            self._scores[key] = result
        return result

    def previous_predictions(self, run: model.RunInfo) -> Predictions | None:
        """The previous round's predictions on the agreement set, or None in round 0 (or when the
        run does not measure agreement)."""
        with self._lock:
            cached = self._scores.get((run.id, run.round - 1))
        if cached is not None:
            return cached.predictions
        if run.config.candidates and not run.config.stopping.stable_agreement:
            return None
        previous = {r.index: r for r in self.pool.list_rounds(run.id)}.get(run.round - 1)
        if previous is None or not previous.checkpoint_id:
            return None
        # Lost with a restart: the previous checkpoint scores the agreement set again (deterministic);
        # of the samples it scored then, those still unlabelled are scored again.
        return self._agreement_set(run, previous.checkpoint_id)

    def _agreement_set(self, run: model.RunInfo, checkpoint_id: str) -> Predictions:
        config = run.config
        builder = _PredictionsBuilder()
        for chunk in self.scorer.iter_pool_scores(
            dataset=config.dataset,
            run_id=run.id,
            checkpoint_id=checkpoint_id,
            split="train",
            probabilities=False,
            subset=config.candidates,
            subset_seed=agreement_seed(config.random_seed),
        ):
            builder.add(chunk)
        return builder.build()

    def forget(self, run_id: int, up_to_round: int) -> None:
        with self._lock:
            for key in [k for k in self._scores if k[0] == run_id and k[1] <= up_to_round]:
                del self._scores[key]
