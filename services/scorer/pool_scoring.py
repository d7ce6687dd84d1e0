"""Score a dataset's pool chunk by chunk, as ScorePool streams it, or embed it for the fast head, as
EmbedPool does. Knows nothing of gRPC: it takes a :class:`PoolQuery` and a page reader, and yields
:class:`PoolChunk` values; the servicer converts the request and each chunk, and calls
:meth:`PoolScoring.cancel` when its caller goes away."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator

from lesslabels.common import errors
from lesslabels.contract import EmbedProgress, FastHead, SampleQuery
from lesslabels.scorer.head_scoring import FastHeads, PageScorer
from lesslabels.scorer.model_cache import ModelCache, ModelSpec, Scores
from lesslabels.scorer.pool_source import CancelScope, PoolPage

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 512
MAX_CHUNK = 5000

#: Reads a pool page by page, with the keywords of ``pool_source.iter_pool_pages`` after the pool.
PageReader = Callable[..., Iterator[PoolPage]]


@dataclasses.dataclass(frozen=True)
class PoolQuery:
    """Which samples to score, with which model, in chunks of how many."""

    samples: SampleQuery
    spec: ModelSpec | FastHead  # a fast head's dataset is the samples' dataset
    chunk_size: int = 0  # 0: DEFAULT_CHUNK
    embeddings: bool = False

    def __post_init__(self) -> None:
        self.samples.validate()
        if self.chunk_size < 0:
            raise errors.InvalidArgument(f"chunk_size must not be negative, got {self.chunk_size}")


@dataclasses.dataclass(frozen=True)
class PoolChunk:
    """The scores of one page of samples, row-aligned with ``sample_ids``."""

    checkpoint_id: str  # the key of the loaded model when it is a base model
    sample_ids: list[int]
    gold_labels: list[str]  # test and dev splits only
    scores: Scores
    done: int  # samples scored so far, this chunk included
    total: int  # matching samples, at least ``done``


class PoolScoring:
    """One scoring of a pool: iterate it for the chunks. ``cancel()``, from any thread, stops it:
    the pool call in flight is cancelled and no further page is scored."""

    def __init__(
        self,
        cache: ModelCache,
        read_pages: PageReader,
        query: PoolQuery,
        *,
        max_chunk: int,
        heads: FastHeads | None = None,
    ):
        self.query = query
        self.done = 0
        self._cache = cache
        self._heads = heads
        self._read_pages = read_pages
        self._chunk = min(query.chunk_size or DEFAULT_CHUNK, MAX_CHUNK, max_chunk)
        self._cancel = CancelScope()
        self._finished = threading.Event()

    def cancel(self) -> None:
        """Stop; logged as a cancellation unless the scoring already finished or failed."""
        self._cancel.cancel()
        if not self._finished.is_set():
            log.info("event=score_pool_cancelled dataset=%s done=%d", self.query.samples.dataset, self.done)

    def __iter__(self) -> Iterator[PoolChunk]:
        try:
            yield from self._chunks()
        except Exception:
            self._finished.set()  # a failure, reported to the caller as such, not a cancellation
            raise
        if not self._cancel.is_set():
            self._finished.set()
            log.info(
                "event=score_pool_done dataset=%s run=%s scored=%d",
                self.query.samples.dataset,
                self.query.samples.run_id,
                self.done,
            )

    def _chunks(self) -> Iterator[PoolChunk]:
        query = self.query
        score_page = self._page_scorer()  # NOT_FOUND, FAILED_PRECONDITION... before the pool's samples are read
        pages = self._read_pages(query.samples, page_size=self._chunk, cancel=self._cancel)
        for page in pages:
            if self._cancel.is_set():
                return
            scores = score_page(page.texts, query.embeddings)
            self.done += len(page.texts)
            yield PoolChunk(
                checkpoint_id=scores.checkpoint_id,
                sample_ids=page.sample_ids,
                gold_labels=page.gold_labels,
                scores=scores,
                done=self.done,
                total=max(page.total, self.done),
            )

    def _page_scorer(self) -> PageScorer:
        """Scores pages with the model asked for, loaded (or for a fast head, fit) now."""
        spec = self.query.spec
        if isinstance(spec, FastHead):
            if self._heads is None:
                raise errors.FailedPrecondition("this scorer has no embedding store: the fast head is not available")
            return self._heads.page_scorer(spec.on(self.query.samples.dataset), cancelled=self._cancel.is_set)
        entry = self._cache.load(spec)
        cache = self._cache

        def score_page(texts: list[str], embeddings: bool) -> Scores:
            scores = cache.score(spec, texts, embeddings=embeddings)
            if not scores.checkpoint_id:  # a base model: by its name (ListLoaded's), never its path
                scores.checkpoint_id = entry.name
            return scores

        return score_page


def embed_pool(
    heads: FastHeads,
    read_pages: PageReader,
    samples: SampleQuery,
    base_model: str,
    *,
    chunk_size: int,
    cancel: CancelScope,
) -> Iterator[EmbedProgress]:
    """Embed ``samples`` with ``base_model`` into the embedding store page by page (what a fast
    head's fit and scoring read); stops when ``cancel`` is set."""
    embed = heads.embedder(base_model, cancelled=cancel.is_set)  # InvalidArgument before the pool is read
    done = computed = 0
    for page in read_pages(samples.validate(), page_size=chunk_size, cancel=cancel):
        if cancel.is_set():
            return
        computed += embed(page.texts).computed
        done += len(page.texts)
        yield EmbedProgress(done=done, total=max(page.total, done), computed=computed)
    log.info("event=embed_pool_done dataset=%s done=%d computed=%d", samples.dataset, done, computed)
