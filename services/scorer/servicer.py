"""ScorerService: thin handlers around the model cache (validate, convert, call the core, convert back)."""

from __future__ import annotations

import logging
import threading

import numpy as np

from lesslabels.common import errors
from lesslabels.common.shards import shard_from_proto
from lesslabels.common.server import ServiceRegistration
from lesslabels.client import PoolClient
from lesslabels.v1 import scorer_pb2, scorer_pb2_grpc
from lesslabels.scorer import convert
from lesslabels.scorer.model_cache import ModelCache
from lesslabels.scorer.pool_source import CancelScope, iter_pool_pages

log = logging.getLogger(__name__)

DEFAULT_MAX_TEXTS = 4096
DEFAULT_CHUNK = 512
MAX_CHUNK = 5000


def check_request_size(n_texts: int, max_texts: int) -> None:
    if n_texts > max_texts:
        raise errors.ResourceExhausted(
            f"{n_texts} texts in one request: the limit is {max_texts} (--max-texts); split the request"
        )


class ScorerServicer(scorer_pb2_grpc.ScorerServiceServicer):
    def __init__(
        self,
        cache: ModelCache,
        *,
        pool: PoolClient | None = None,
        max_texts: int = DEFAULT_MAX_TEXTS,
        pool_stream_timeout: float = 3600.0,
    ):
        self.cache = cache
        self.max_texts = max_texts
        self._pool = pool
        self._pool_stream_timeout = pool_stream_timeout

    def Score(self, request, context):
        check_request_size(len(request.texts), self.max_texts)
        spec = convert.spec_from_proto(request.model)
        scores = self.cache.score(
            spec, list(request.texts), embeddings=request.include_embeddings, timeout=_remaining(context)
        )
        return convert.score_response_to_proto(scores, omit_probabilities=request.omit_probabilities)

    def ScorePool(self, request, context):
        if self._pool is None:
            raise errors.FailedPrecondition("this scorer has no pool address (--pool-address); ScorePool needs one")
        if not request.dataset:
            raise errors.InvalidArgument("dataset is required")
        if request.chunk_size < 0:
            raise errors.InvalidArgument(f"chunk_size must not be negative, got {request.chunk_size}")
        if request.subset.size < 0:
            raise errors.InvalidArgument(
                f"subset.size must not be negative, got {request.subset.size} (0 scores every matching sample)"
            )
        if request.subset.size and request.sample_ids:
            raise errors.InvalidArgument("give a random subset or sample_ids, not both")
        shard = shard_from_proto(request)
        chunk = min(request.chunk_size or DEFAULT_CHUNK, MAX_CHUNK, self.max_texts)
        split = convert.SPLIT_NAMES.get(request.split)
        if split is None:
            raise errors.InvalidArgument(f"unknown split {request.split}")
        spec = convert.spec_from_proto(request.model)
        entry = self.cache.load(spec)  # NOT_FOUND before any pool traffic
        cancelled = threading.Event()
        finished = threading.Event()
        done = 0

        def on_rpc_end():
            # Runs when the RPC ends for any reason; before the stream finished = the caller went away.
            cancelled.set()
            scope.cancel()
            if not finished.is_set():
                log.info("event=score_pool_cancelled dataset=%s done=%d", request.dataset, done)

        scope = CancelScope()
        context.add_callback(on_rpc_end)
        pages = iter_pool_pages(
            self._pool,
            dataset=request.dataset,
            split=split,
            run_id=request.run_id,
            include_all=request.include_all,
            page_size=chunk,
            cancelled=cancelled,
            stream_timeout=self._pool_stream_timeout,
            scope=scope,
            subset_size=request.subset.size,
            subset_seed=request.subset.seed,
            sample_ids=request.sample_ids,
            shard=shard,
        )
        try:
            for page in pages:
                if cancelled.is_set():
                    return
                scores = self.cache.score(spec, page.texts, embeddings=request.include_embeddings)
                done += len(page.texts)
                yield scorer_pb2.ScorePoolChunk(
                    checkpoint_id=scores.checkpoint_id or entry.key,
                    labels=scores.labels,
                    sample_ids=page.sample_ids,
                    scores=convert.text_scores_to_proto(scores, omit_probabilities=request.omit_probabilities),
                    done=done,
                    total=max(page.total, done),
                    gold_labels=page.gold_labels,
                )
        except Exception:
            finished.set()  # a failure, reported to the caller as such, not a cancellation
            raise
        if not cancelled.is_set():
            finished.set()
            log.info("event=score_pool_done dataset=%s run=%s scored=%d", request.dataset, request.run_id, done)

    def LoadCheckpoint(self, request, context):
        entry = self.cache.load(convert.spec_from_proto(request.model))
        return convert.loaded_to_proto(entry)

    def ListLoaded(self, request, context):
        return scorer_pb2.ListLoadedResponse(models=[convert.loaded_to_proto(e) for e in self.cache.loaded()])

    def UnloadCheckpoint(self, request, context):
        if not request.checkpoint_id:
            raise errors.InvalidArgument("checkpoint_id is required")
        return scorer_pb2.UnloadCheckpointResponse(unloaded=self.cache.unload(request.checkpoint_id))


def _remaining(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or not np.isfinite(remaining) or remaining > 1e8 else max(remaining, 0.001)


def registration(servicer: ScorerServicer) -> ServiceRegistration:
    name = scorer_pb2.DESCRIPTOR.services_by_name["ScorerService"].full_name
    return ServiceRegistration(
        names=(name,), register=lambda server: scorer_pb2_grpc.add_ScorerServiceServicer_to_server(servicer, server)
    )
