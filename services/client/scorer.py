"""``ScorerClient``: class probabilities and uncertainty for texts, or for a dataset's pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, overload

import numpy as np

from lesslabels.client import frames
from lesslabels.client.base import ServiceClient
from lesslabels.common.errors import quote
from lesslabels.client.errors import InvalidArgument
from lesslabels.client.types import PoolScores, Scores, Uncertainty
from lesslabels.contract import EmbedProgress, FastHead, SampleQuery, Shard, wire
from lesslabels.v1 import common_pb2, scorer_pb2, scorer_pb2_grpc

#: Deadline of one ScorePool stream (a whole split on CPU).
SCORE_POOL_TIMEOUT = 3 * 3600.0


def model_ref(
    *,
    checkpoint: str | None = None,
    run: int | None = None,
    best: bool = False,
    base_model: str | None = None,
    fast_head: FastHead | None = None,
) -> common_pb2.ModelRef:
    """The model to score with: a checkpoint id, a run's latest (or ``best``) checkpoint, a
    pretrained base model (embeddings only) or a run's fast head (``FastHead(run_id)``: a logistic
    regression on the base encoder's kept embeddings, fit on the run's labels as they are). Exactly
    one of them."""
    given = [
        name
        for name, value in (
            ("checkpoint", checkpoint),
            ("run", run),
            ("base_model", base_model),
            ("fast_head", fast_head),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise InvalidArgument(
            "give exactly one of checkpoint=, run=, base_model= or fast_head="
            f" (got {', '.join(given) if given else 'none'})"
        )
    if fast_head is not None:
        if not isinstance(fast_head, FastHead):
            raise InvalidArgument(f"fast_head must be a lesslabels.contract.FastHead, got {type(fast_head).__name__}")
        return common_pb2.ModelRef(fast_head=wire.fast_head_to_proto(fast_head))
    if best and run is None:
        raise InvalidArgument("best=True selects the best checkpoint of a run: give run= too")
    if checkpoint is not None:
        if not isinstance(checkpoint, str) or not checkpoint:
            raise InvalidArgument(f"checkpoint must be a non-empty checkpoint id, got {quote(checkpoint)}")
        return common_pb2.ModelRef(checkpoint_id=checkpoint)
    if run is not None:
        if isinstance(run, bool) or not isinstance(run, int) or run <= 0:
            raise InvalidArgument(f"run must be a positive run id, got {quote(run)}")
        if best:
            return common_pb2.ModelRef(best_of_run=run)
        return common_pb2.ModelRef(latest_of_run=run)
    return common_pb2.ModelRef(base_model=base_model)


def _sample_query(samples: SampleQuery | str, which: dict) -> SampleQuery:
    """``samples`` as a validated SampleQuery: one given, or a dataset name and SampleQuery's fields."""
    if isinstance(samples, SampleQuery):
        if which:
            raise InvalidArgument(f"give a SampleQuery or its fields as keywords, not both ({', '.join(which)})")
        return samples.validate()
    try:
        return SampleQuery(samples, **which).validate()
    except TypeError as exc:
        raise InvalidArgument(f"score_pool: {exc}") from None


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
        fast_head: FastHead | None = None,
        embeddings: bool = False,
        probabilities: bool = True,
        timeout: float | None = None,
    ) -> Scores:
        """Score ``texts`` with a checkpoint (``checkpoint="..."``), a run's latest checkpoint
        (``run=1``; ``best=True`` for its best by validation), a base model (embeddings), or a run's
        fast head (``fast_head=FastHead(1, dataset="flights")``; its dataset is required here).

        Raises NotFound for an unknown checkpoint or a run without one, ResourceExhausted over the
        scorer's text limit, InvalidArgument for bad arguments, FailedPrecondition for a fast head
        whose run has labels of fewer than 2 classes."""
        request = scorer_pb2.ScoreRequest(
            model=model_ref(checkpoint=checkpoint, run=run, best=best, base_model=base_model, fast_head=fast_head),
            texts=_texts(texts),
            include_embeddings=embeddings,
            omit_probabilities=not probabilities,
        )
        what = f"score {len(request.texts)} texts"
        return scores_from_proto(self._unary(self._stub.Score, request, what, timeout), embeddings=embeddings)

    @overload
    def score_pool(
        self, samples: SampleQuery | str, *, as_frame: Literal[False] = False, **options: Any
    ) -> PoolScores: ...
    @overload
    def score_pool(self, samples: SampleQuery | str, *, as_frame: Literal[True], **options: Any) -> Any: ...
    def score_pool(self, samples: SampleQuery | str, *, as_frame: bool = False, **options: Any) -> PoolScores | Any:
        """Score samples of a dataset on the scorer (texts never travel through the caller).

        ``samples`` is a :class:`SampleQuery`, or a dataset name with its fields as keywords:
        ``score_pool("flights", run=3, subset=1000)``; by default the train split's samples without a
        label in the scope of ``run_id``. The model: ``checkpoint=ID``, ``run=N`` (its latest
        checkpoint, or with ``best=True`` the one it keeps), ``base_model=NAME`` (embeddings only) or
        ``fast_head=FastHead(N)`` (run N's fast head, fit once for the whole stream; its dataset is
        the samples' dataset; ``checkpoint_id`` names the head's version).
        ``embeddings=True`` adds them; ``probabilities=False`` leaves out the probability rows
        (``uncertainty`` and ``predicted`` are always there). ``chunk_size`` (512) samples per streamed
        chunk, ``progress(done, total)`` called per chunk, ``timeout`` (3 h) for the whole stream.
        Arrays are in the order the scorer returned the samples (``sample_ids``). ``as_frame``: a
        pandas DataFrame instead, a row per sample (``lesslabels.client.frames``; no embeddings)."""
        stream, probabilities, embeddings = self._score_pool_stream(samples, **options)
        scores = wire.pool_scores_from_chunks(stream, probabilities=probabilities, embeddings=embeddings)
        return frames.pool_scores_frame(scores) if as_frame else scores

    def score_pool_chunks(self, samples: SampleQuery | str, **options: Any) -> Iterator[PoolScores]:
        """``score_pool`` (the same arguments) one chunk at a time, as the scorer streams it: for a
        caller that keeps only part of a large pool (the best candidates), so memory does not grow
        with the pool."""
        stream, probabilities, embeddings = self._score_pool_stream(samples, **options)
        for chunk in stream:
            yield wire.pool_scores_from_chunks([chunk], probabilities=probabilities, embeddings=embeddings)

    def embed_pool(
        self,
        dataset: str,
        *,
        base_model: str = "",
        shard: Shard | None = None,
        chunk_size: int = 2048,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = SCORE_POOL_TIMEOUT,
    ) -> EmbedProgress:
        """Have the scorer compute and keep ``base_model``'s embeddings of ``dataset``'s training
        samples (or one ``shard``), the fast head's features, ahead of its first use; texts kept
        before cost a lookup. Returns the last progress (done, total, computed now)."""
        request = scorer_pb2.EmbedPoolRequest(
            dataset=dataset, base_model=base_model, chunk_size=chunk_size, shard=wire.shard_to_proto(shard)
        )
        what = f"embedding the training split of {quote(dataset)}"
        return _embed_progress(self._stream(self._stub.EmbedPool, request, what, timeout), progress)

    def _score_pool_stream(
        self,
        samples: SampleQuery | str,
        *,
        checkpoint: str | None = None,
        run: int | None = None,
        best: bool = False,
        base_model: str | None = None,
        fast_head: FastHead | None = None,
        embeddings: bool = False,
        probabilities: bool = True,
        chunk_size: int = 512,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = SCORE_POOL_TIMEOUT,
        **which: Any,
    ) -> tuple[Iterator[scorer_pb2.ScorePoolChunk], bool, bool]:
        query = _sample_query(samples, which)
        request = scorer_pb2.ScorePoolRequest(
            model=model_ref(checkpoint=checkpoint, run=run, best=best, base_model=base_model, fast_head=fast_head),
            chunk_size=chunk_size,
            include_embeddings=embeddings,
            omit_probabilities=not probabilities,
            **wire.sample_query_fields(query),
        )
        what = f"scoring the {query.split} split of {quote(query.dataset)}"
        stream = self._stream(self._stub.ScorePool, request, what, timeout)
        return _with_progress(stream, progress), probabilities, embeddings


def _embed_progress(
    stream: Iterator[scorer_pb2.EmbedPoolProgress], progress: Callable[[int, int], None] | None
) -> EmbedProgress:
    last = EmbedProgress(done=0, total=0, computed=0)
    for message in stream:
        last = EmbedProgress(done=message.done, total=message.total, computed=message.computed)
        if progress is not None:
            progress(last.done, last.total)
    return last


def _with_progress(
    stream: Iterator[scorer_pb2.ScorePoolChunk], progress: Callable[[int, int], None] | None
) -> Iterator[scorer_pb2.ScorePoolChunk]:
    for chunk in stream:
        if progress is not None:
            progress(chunk.done, chunk.total)
        yield chunk
