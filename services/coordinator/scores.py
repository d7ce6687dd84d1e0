"""Pool scores of each round's checkpoint, kept between the SCORE and SELECT steps and for the next
round's agreement; re-scored (deterministically) when lost with a restart."""

from __future__ import annotations

import threading

from lesslabels.coordinator import model, strategies
from lesslabels.coordinator.ports import PoolPort, Progress, ScorerPort


class PoolScoreCache:
    def __init__(self, pool: PoolPort, scorer: ScorerPort):
        self.pool = pool
        self.scorer = scorer
        self._lock = threading.Lock()
        # (run_id, round) -> pool scores of that round's checkpoint, for selection and agreement.
        self._scores: dict[tuple[int, int], model.PoolScores] = {}

    def of_round(
        self, run: model.RunInfo, round_index: int, checkpoint_id: str, progress: Progress | None = None
    ) -> model.PoolScores:
        """The training pool scored by the round's checkpoint (probabilities, and embeddings when the
        run's strategy needs them)."""
        key = (run.id, round_index)
        with self._lock:
            cached = self._scores.get(key)
        if cached is not None:
            return cached
        scores = self.scorer.score_pool(
            dataset=run.config.dataset,
            run_id=run.id,
            checkpoint_id=checkpoint_id,
            split="train",
            include_all=True,
            embeddings=run.config.strategy in strategies.NEEDS_EMBEDDINGS,
            probabilities=True,
            progress=progress,
        )
        with self._lock:
            self._scores[key] = scores
        return scores

    def of_previous_round(self, run: model.RunInfo) -> model.PoolScores | None:
        """Predictions of the previous round's checkpoint on the pool, or None in round 0."""
        with self._lock:
            cached = self._scores.get((run.id, run.round - 1))
        if cached is not None:
            return cached
        previous = {r.index: r for r in self.pool.list_rounds(run.id)}.get(run.round - 1)
        if previous is None or not previous.checkpoint_id:
            return None
        # Lost with a restart: re-score the previous checkpoint (deterministic) for the agreement.
        return self.scorer.score_pool(
            dataset=run.config.dataset,
            run_id=run.id,
            checkpoint_id=previous.checkpoint_id,
            split="train",
            include_all=True,
            probabilities=False,
        )

    def forget(self, run_id: int, up_to_round: int) -> None:
        with self._lock:
            for key in [k for k in self._scores if k[0] == run_id and k[1] <= up_to_round]:
                del self._scores[key]
