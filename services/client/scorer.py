"""``ScorerClient``: class probabilities and uncertainty for texts, or for a dataset's pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from lesslabels.client._base import ServiceClient
from lesslabels.client.errors import InvalidArgument
from lesslabels.client.pool import random_subset
from lesslabels.common.shards import Shard, shard_to_proto
from lesslabels.client.types import PoolScores, Scores, Uncertainty
from lesslabels.contract import wire
from lesslabels.v1 import common_pb2, scorer_pb2, scorer_pb2_grpc

#: Deadline of one ScorePool stream (a whole split on CPU).
SCORE_POOL_TIMEOUT = 3 * 3600.0
SPLITS = {"train": common_pb2.SPLIT_TRAIN, "test": common_pb2.SPLIT_TEST, "dev": common_pb2.SPLIT_DEV}
#: Name of the ModelRef field for a run's best checkpoint (by validation metrics), where the protocol has it.
BEST_FIELD = "best_of_run"


def model_ref(
    *, checkpoint: str | None = None, run: int | None = None, best: bool = False, base_model: str | None = None
) -> common_pb2.ModelRef:
    """The model to score with: a checkpoint id, a run's latest (or ``best``) checkpoint, or a
    pretrained base model (embeddings only). Exactly one of them."""
    given = [
        name
        for name, value in (("checkpoint", checkpoint), ("run", run), ("base_model", base_model))
        if value is not None
    ]
    if len(given) != 1:
        raise InvalidArgument(
            f"give exactly one of checkpoint=, run= or base_model= (got {', '.join(given) if given else 'none'})"
        )
    if best and run is None:
        raise InvalidArgument("best=True selects the best checkpoint of a run: give run= too")
    if checkpoint is not None:
        if not isinstance(checkpoint, str) or not checkpoint:
            raise InvalidArgument(f"checkpoint must be a non-empty checkpoint id, got {checkpoint!r}")
        return common_pb2.ModelRef(checkpoint_id=checkpoint)
    if run is not None:
        if isinstance(run, bool) or not isinstance(run, int) or run <= 0:
            raise InvalidArgument(f"run must be a positive run id, got {run!r}")
        if best:
            if BEST_FIELD not in common_pb2.ModelRef.DESCRIPTOR.fields_by_name:
                raise InvalidArgument(
                    "best=True needs a scorer protocol with a best-checkpoint reference; "
                    "this version has only the latest checkpoint of a run"
                )
            return common_pb2.ModelRef(best_of_run=run)
        return common_pb2.ModelRef(latest_of_run=run)
    return common_pb2.ModelRef(base_model=base_model)


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InvalidArgument("texts must be a list of strings, not one string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidArgument(f"texts[{i}] must be a string, got {type(text).__name__}")
    return out


def scores_from_proto(reply: scorer_pb2.ScoreResponse, *, embeddings: bool = False) -> Scores:
    rows = reply.scores
    n, k = len(rows), len(reply.labels)
    probs = (
        np.array([list(s.probabilities) for s in rows], dtype=np.float32).reshape(n, -1)
        if n
        else np.zeros((0, k), np.float32)
    )

    def column(name: str) -> np.ndarray:
        return np.fromiter((getattr(s, name) for s in rows), dtype=np.float64, count=n)

    return Scores(
        checkpoint_id=reply.checkpoint_id,
        labels=tuple(reply.labels),
        probabilities=probs,  # [n, k]
        predicted=tuple(s.predicted_label for s in rows),
        uncertainty=Uncertainty(
            entropy=column("entropy"),
            margin=column("margin"),
            least_confidence=column("least_confidence"),
            ratio=column("ratio"),
        ),
        truncated=np.fromiter((s.truncated for s in rows), dtype=bool, count=n),
        embeddings=np.array([list(s.embedding) for s in rows], dtype=np.float32) if embeddings and n else None,
    )


class ScorerClient(ServiceClient):
    """Client of the scorer service (default port 50053).

    >>> with ScorerClient("localhost:50053", token="...") as scorer:
    ...     scores = scorer.score(["show me flights to denver"], run=1)
    ...     scores.predicted, scores.probabilities, scores.uncertainty.entropy
    """

    service = "scorer"

    def __init__(self, address: str, **kwargs):
        super().__init__(address, **kwargs)
        self._stub = scorer_pb2_grpc.ScorerServiceStub(self._channel)

    def score(
        self,
        texts: Sequence[str],
        *,
        checkpoint: str | None = None,
        run: int | None = None,
        best: bool = False,
        base_model: str | None = None,
        embeddings: bool = False,
        probabilities: bool = True,
        timeout: float | None = None,
    ) -> Scores:
        """Score ``texts`` with a checkpoint (``checkpoint="..."``), a run's latest checkpoint
        (``run=1``; ``best=True`` for its best by validation), or a base model (embeddings).

        Raises NotFound for an unknown checkpoint or a run without one, ResourceExhausted over the
        scorer's text limit, InvalidArgument for bad arguments."""
        request = scorer_pb2.ScoreRequest(
            model=model_ref(checkpoint=checkpoint, run=run, best=best, base_model=base_model),
            texts=_texts(texts),
            include_embeddings=embeddings,
            omit_probabilities=not probabilities,
        )
        what = f"score {len(request.texts)} texts"
        return scores_from_proto(self._unary(self._stub.Score, request, what, timeout), embeddings=embeddings)

    def score_pool(
        self,
        dataset: str,
        *,
        checkpoint: str | None = None,
        run: int | None = None,
        best: bool = False,
        base_model: str | None = None,
        run_id: int = 0,
        split: str = "train",
        include_all: bool = False,
        embeddings: bool = False,
        probabilities: bool = True,
        subset: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        chunk_size: int = 512,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = SCORE_POOL_TIMEOUT,
    ) -> PoolScores:
        """Score a split of ``dataset`` on the scorer (texts never travel through the caller).

        By default only the samples unlabelled in the scope of ``run_id``; ``include_all`` for
        every sample. ``subset=N``: only N of them, a random subset the pool draws under
        ``subset_seed`` (the same seed over the same samples gives the same subset);
        ``sample_ids``: only those samples; ``shard`` (``lesslabels.common.shards.Shard``): only that
        shard of them, for one of several scorer replicas. ``probabilities=False`` leaves out the probability
        rows (``uncertainty`` and ``predicted`` are always there). ``progress(done, total)`` is
        called per chunk. Arrays are in the order the scorer returned the samples (``sample_ids``)."""
        stream = self._score_pool_stream(
            dataset,
            model=model_ref(checkpoint=checkpoint, run=run, best=best, base_model=base_model),
            run_id=run_id,
            split=split,
            include_all=include_all,
            embeddings=embeddings,
            probabilities=probabilities,
            subset=subset,
            subset_seed=subset_seed,
            sample_ids=sample_ids,
            shard=shard,
            chunk_size=chunk_size,
            progress=progress,
            timeout=timeout,
        )
        return wire.pool_scores_from_chunks(stream, probabilities=probabilities, embeddings=embeddings)

    def score_pool_chunks(
        self,
        dataset: str,
        *,
        checkpoint: str | None = None,
        run: int | None = None,
        best: bool = False,
        base_model: str | None = None,
        run_id: int = 0,
        split: str = "train",
        include_all: bool = False,
        embeddings: bool = False,
        probabilities: bool = True,
        subset: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        chunk_size: int = 512,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = SCORE_POOL_TIMEOUT,
    ) -> Iterator[PoolScores]:
        """``score_pool`` one chunk at a time, as the scorer streams it: for a caller that keeps only
        part of a large pool (the best candidates), so memory does not grow with the pool."""
        stream = self._score_pool_stream(
            dataset,
            model=model_ref(checkpoint=checkpoint, run=run, best=best, base_model=base_model),
            run_id=run_id,
            split=split,
            include_all=include_all,
            embeddings=embeddings,
            probabilities=probabilities,
            subset=subset,
            subset_seed=subset_seed,
            sample_ids=sample_ids,
            shard=shard,
            chunk_size=chunk_size,
            progress=progress,
            timeout=timeout,
        )
        for chunk in stream:
            yield wire.pool_scores_from_chunks([chunk], probabilities=probabilities, embeddings=embeddings)

    def _score_pool_stream(
        self,
        dataset: str,
        *,
        model: common_pb2.ModelRef,
        run_id: int,
        split: str,
        include_all: bool,
        embeddings: bool,
        probabilities: bool,
        subset: int,
        subset_seed: int,
        sample_ids: Sequence[int],
        shard: Shard | None,
        chunk_size: int,
        progress: Callable[[int, int], None] | None,
        timeout: float | None,
    ) -> Iterator[scorer_pb2.ScorePoolChunk]:
        if split not in SPLITS:
            raise InvalidArgument(f"unknown split {split!r} (expected dev, test or train)")
        request = scorer_pb2.ScorePoolRequest(
            model=model,
            dataset=dataset,
            run_id=run_id,
            chunk_size=chunk_size,
            include_embeddings=embeddings,
            omit_probabilities=not probabilities,
            split=SPLITS[split],
            include_all=include_all,
            subset=random_subset(subset, subset_seed),
            sample_ids=[int(i) for i in sample_ids],
            shard=shard_to_proto(shard),
        )
        stream = self._stream(self._stub.ScorePool, request, f"scoring the {split} split of {dataset!r}", timeout)
        for chunk in stream:
            if progress is not None:
                progress(chunk.done, chunk.total)
            yield chunk
