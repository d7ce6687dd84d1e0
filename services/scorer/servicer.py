"""ScorerService: thin handlers around the model cache and pool scoring (validate, convert, call
the core, convert back)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence

from lesslabels.client import PoolClient
from lesslabels.common import errors
from lesslabels.common.server import ServiceRegistration
from lesslabels.contract import FastHead
from lesslabels.scorer import convert
from lesslabels.scorer.deadline import time_left
from lesslabels.scorer.head_scoring import FastHeads
from lesslabels.scorer.limits import (
    DEFAULT_MAX_INFLIGHT_MB,
    DEFAULT_MAX_TEXTS,
    MiB,
    InFlightBudget,
    check_request_size,
    text_bytes,
)
from lesslabels.scorer.model_cache import ModelCache, ModelSpec, Scores
from lesslabels.scorer.pool_scoring import DEFAULT_CHUNK, MAX_CHUNK, PoolScoring, embed_pool
from lesslabels.scorer.pool_source import CancelScope, iter_pool_pages
from lesslabels.v1 import scorer_pb2, scorer_pb2_grpc

log = logging.getLogger(__name__)


class ScorerServicer(scorer_pb2_grpc.ScorerServiceServicer):
    def __init__(
        self,
        cache: ModelCache,
        *,
        pool: PoolClient | None = None,
        max_texts: int = DEFAULT_MAX_TEXTS,
        pool_stream_timeout: float = 3600.0,
        heads: FastHeads | None = None,
        in_flight: InFlightBudget | None = None,
    ):
        self.cache = cache
        self.max_texts = max_texts
        self.in_flight = in_flight or InFlightBudget(DEFAULT_MAX_INFLIGHT_MB * MiB)
        self._pool = pool
        self._pool_stream_timeout = pool_stream_timeout
        self.heads = heads

    def Score(self, request, context):
        check_request_size(len(request.texts), self.max_texts)
        spec = convert.model_from_proto(request.model)
        with self.in_flight.hold(text_bytes(request.texts)):
            # The repeated field itself, not a list copy: texts are read a chunk at a time.
            scores = self._score(spec, request.texts, embeddings=request.include_embeddings, timeout=time_left(context))
            return convert.score_response_to_proto(scores, omit_probabilities=request.omit_probabilities)

    def ScorePool(self, request, context):
        if self._pool is None:
            raise errors.FailedPrecondition("this scorer has no pool address (--pool-address); ScorePool needs one")
        query = convert.pool_query_from_proto(request)
        # iter_pool_pages is looked up at each call, so a test may wrap the pool reader on a running server.
        read_pages = functools.partial(iter_pool_pages, self._pool, stream_timeout=self._pool_stream_timeout)
        heads = self._fast_heads() if isinstance(query.spec, FastHead) else None
        scoring = PoolScoring(self.cache, read_pages, query, max_chunk=self.max_texts, heads=heads)
        context.add_callback(scoring.cancel)  # runs when the RPC ends: before the last chunk = the caller went away
        for chunk in scoring:
            yield convert.pool_chunk_to_proto(chunk, omit_probabilities=request.omit_probabilities)

    def EmbedPool(self, request, context):
        if self._pool is None:
            raise errors.FailedPrecondition("this scorer has no pool address (--pool-address); EmbedPool needs one")
        samples = convert.embed_query_from_proto(request)
        read_pages = functools.partial(iter_pool_pages, self._pool, stream_timeout=self._pool_stream_timeout)
        cancel = CancelScope()
        context.add_callback(cancel.cancel)
        chunk = min(request.chunk_size or DEFAULT_CHUNK, MAX_CHUNK, self.max_texts)
        for progress in embed_pool(
            self._fast_heads(), read_pages, samples, request.base_model, chunk_size=chunk, cancel=cancel
        ):
            yield scorer_pb2.EmbedPoolProgress(done=progress.done, total=progress.total, computed=progress.computed)

    def _score(
        self, spec: ModelSpec | FastHead, texts: Sequence[str], *, embeddings: bool, timeout: float | None
    ) -> Scores:
        """Through the model cache, or for a fast head through the fast heads (stopping at the deadline)."""
        if not isinstance(spec, FastHead):
            return self.cache.score(spec, texts, embeddings=embeddings, timeout=timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._fast_heads().score(
            spec,
            list(texts),
            embeddings=embeddings,
            cancelled=lambda: deadline is not None and time.monotonic() > deadline,
        )

    def _fast_heads(self) -> FastHeads:
        if self.heads is None:
            raise errors.FailedPrecondition(
                "this scorer has no pool address (--pool-address); the fast head reads the run's labels from it"
            )
        return self.heads

    def LoadCheckpoint(self, request, context):
        entry = self.cache.load(convert.spec_from_proto(request.model))
        return convert.loaded_to_proto(entry)

    def ListLoaded(self, request, context):
        return scorer_pb2.ListLoadedResponse(models=[convert.loaded_to_proto(e) for e in self.cache.loaded()])

    def UnloadCheckpoint(self, request, context):
        if not request.checkpoint_id:
            raise errors.InvalidArgument("checkpoint_id is required")
        return scorer_pb2.UnloadCheckpointResponse(unloaded=self.cache.unload(request.checkpoint_id))


#: Model cache management: loading and evicting models is the operators' and the services' (with an
#: internal token set, the public one cannot evict every model; it still scores and lists them).
INTERNAL_METHODS = ("LoadCheckpoint", "UnloadCheckpoint")


def registration(servicer: ScorerServicer) -> ServiceRegistration:
    name = scorer_pb2.DESCRIPTOR.services_by_name["ScorerService"].full_name
    return ServiceRegistration(
        names=(name,),
        register=lambda server: scorer_pb2_grpc.add_ScorerServiceServicer_to_server(servicer, server),
        internal_methods=tuple(f"/{name}/{method}" for method in INTERNAL_METHODS),
    )
