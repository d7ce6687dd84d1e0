"""Dynamic batching: concurrent requests merged into length-bucketed batches, one future each.

Follows the design of Ray Serve's ``serve.batch`` (``python/ray/serve/batching.py``), with
threads instead of asyncio because the gRPC server is thread based:

* callers ``submit`` a request (a list of items) and get one :class:`concurrent.futures.Future`;
* one worker thread takes the first waiting request, then keeps collecting for at most
  ``max_wait_s`` or until ``max_batch_size`` items / ``max_tokens`` tokens are waiting;
* the collected items are sorted by length and cut into batches bounded by ``max_batch_size``
  rows, ``max_tokens`` padded tokens (rows x longest row) and ``max_padding``, so padding stays
  small;
* with ``workers`` > 1 the batches of a collection run on that many threads at once (on a CPU,
  batches side by side with one torch thread each beat one batch at a time on every core: 1.4x
  for MiniLM on 2 cores, bench/README.md);
* the batch function's output must have exactly one row per input row (checked);
* each future receives its own rows, in its own order; an exception from the batch function
  is delivered to every caller with rows in the failed batch, and the worker carries on.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from lesslabels.common import metrics

log = logging.getLogger(__name__)

#: ``batch_fn(items) -> list of per-item results`` (same length, same order).
BatchFn = Callable[[list[Any]], Sequence[Any]]


class BatcherClosed(RuntimeError):
    """The batcher was closed before the request could run."""


@dataclasses.dataclass
class _Request:
    items: list[Any]
    lengths: list[int]
    future: Future
    enqueued: float


@dataclasses.dataclass(frozen=True)
class BatchStats:
    collections: int
    batches: int
    rows: int
    padded_tokens: int
    real_tokens: int


def plan_batches(
    lengths: Sequence[int] | np.ndarray, max_batch_size: int, max_tokens: int, max_padding: float = 0.1
) -> list[np.ndarray]:
    """Order rows by length and cut them into batches: each batch has at most ``max_batch_size``
    rows, ``rows * longest <= max_tokens`` and at most ``max_padding`` (a fraction of its real
    tokens) of padding; a single row over the token budget gets its own batch. Returns arrays of
    row indices; together they cover every row exactly once."""
    if not len(lengths):
        return []
    lengths = np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")  # shortest first
    batches: list[np.ndarray] = []
    start = 0
    n = len(order)
    while start < n:
        end = start + 1
        real = int(lengths[order[start]])
        # Rows are sorted, so the newest row is the longest: padded cost = rows * its length.
        while end < n and end - start < max_batch_size:
            length = int(lengths[order[end]])
            padded = (end - start + 1) * length
            if padded > max_tokens or padded > (1.0 + max_padding) * (real + length):
                break
            real += length
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


class DynamicBatcher:
    """Merge concurrent requests into bounded, length-bucketed batches: one worker thread collects
    them and runs each batch itself, or on ``workers`` threads side by side when ``workers`` > 1."""

    def __init__(
        self,
        batch_fn: BatchFn,
        *,
        length_fn: Callable[[Any], int] = len,
        max_batch_size: int = 64,
        max_tokens: int = 8192,
        max_wait_s: float = 0.005,
        max_padding: float = 0.1,
        max_collect_rows: int = 4096,
        workers: int = 1,
        name: str = "batcher",
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._batch_fn = batch_fn
        self._length_fn = length_fn
        self.max_batch_size = max_batch_size
        self.max_tokens = max_tokens
        self.max_wait_s = max_wait_s
        self.max_padding = max_padding
        self.max_collect_rows = max(max_collect_rows, max_batch_size)
        self.name = name
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"{name}-run") if workers > 1 else None
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._collections = self._batches = self._rows = self._padded = self._real = 0
        self._worker = threading.Thread(target=self._run, name=f"{name}-worker", daemon=True)
        self._worker.start()

    # -- callers ---------------------------------------------------------------------------
    def submit(self, items: Sequence[Any]) -> Future:
        """Queue ``items``; the future resolves to a list with one result per item, in order."""
        future: Future = Future()
        items = list(items)
        if not items:
            future.set_result([])
            return future
        with self._lock:  # no request slips in after close() drained the queue
            if self._closed.is_set():
                raise BatcherClosed(f"{self.name} is closed")
            self._queue.put(_Request(items, [int(self._length_fn(x)) for x in items], future, time.monotonic()))
            metrics.SCORER_QUEUE_TEXTS.inc(len(items))
        return future

    def __call__(self, items: Sequence[Any], timeout: float | None = None) -> list[Any]:
        return self.submit(items).result(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop accepting requests, finish those already queued, stop the worker."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._queue.put(None)
        self._worker.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    @property
    def stats(self) -> BatchStats:
        return BatchStats(self._collections, self._batches, self._rows, self._padded, self._real)

    # -- worker ----------------------------------------------------------------------------
    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` plus whatever arrives within ``max_wait_s`` until a batch is full, plus whatever
        is already waiting (up to ``max_collect_rows``): a larger pool of rows to sort by length
        means less padding when callers send many mid-sized requests."""
        requests = [first]
        rows = len(first.items)
        tokens = sum(first.lengths)
        deadline = time.monotonic() + self.max_wait_s
        while rows < self.max_collect_rows:
            filling = rows < self.max_batch_size and tokens < self.max_tokens
            remaining = deadline - time.monotonic()
            try:
                if filling and remaining > 0:
                    nxt = self._queue.get(timeout=remaining)
                else:
                    nxt = self._queue.get_nowait()  # full or out of time: take only what is waiting
            except queue.Empty:
                break
            if nxt is None:
                return requests, True
            requests.append(nxt)
            rows += len(nxt.items)
            tokens += sum(nxt.lengths)
        return requests, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            requests, stop = self._collect(first)
            self._process(requests)
            # Not kept while waiting for the next request: they hold its rows (token ids) and results.
            del first, requests
        # Closed: anything still queued (submitted before close) is run, not dropped.
        leftovers = []
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is not None:
                leftovers.append(req)
        if leftovers:
            self._process(leftovers)

    def _process(self, requests: list[_Request]) -> None:
        now = time.monotonic()
        metrics.SCORER_QUEUE_TEXTS.dec(sum(len(r.items) for r in requests))
        for r in requests:
            metrics.SCORER_QUEUE_WAIT.observe(now - r.enqueued)
        live = [r for r in requests if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        items = [item for r in live for item in r.items]
        lengths = [n for r in live for n in r.lengths]
        owner = np.repeat(np.arange(len(live)), [len(r.items) for r in live])  # [rows] -> request index
        results: list[Any] = [None] * len(items)
        failed: dict[int, BaseException] = {}

        def run(rows: np.ndarray) -> tuple[np.ndarray, Any, BaseException | None]:
            if self._pool is None and set(owner[rows].tolist()) <= failed.keys():
                return rows, None, None  # everyone in this batch has already failed
            batch = [items[i] for i in rows]
            metrics.SCORER_BATCH_SIZE.observe(len(batch))
            metrics.SCORER_TEXTS.inc(len(batch))
            try:
                out = self._batch_fn(batch)
                if out is None or len(out) != len(batch):
                    got = "None" if out is None else len(out)
                    raise RuntimeError(f"{self.name}: batch function returned {got} results for {len(batch)} inputs")
                return rows, out, None
            except BaseException as exc:  # noqa: BLE001 - delivered to every caller of this batch
                return rows, None, exc

        plans = plan_batches(lengths, self.max_batch_size, self.max_tokens, self.max_padding)
        outcomes = self._pool.map(run, plans) if self._pool is not None else map(run, plans)
        for rows, out, exc in outcomes:  # lazily, in order: a sequential run sees earlier failures
            callers = set(owner[rows].tolist())
            if exc is not None:
                log.warning(
                    "event=batch_failed batcher=%s callers=%d rows=%d error=%r", self.name, len(callers), len(rows), exc
                )
                for c in callers:
                    failed.setdefault(c, exc)
                continue
            if out is None:
                continue
            for i, row in zip(rows, out, strict=True):
                results[i] = row
            self._batches += 1
            padded = len(rows) * max(lengths[i] for i in rows)
            self._padded += padded
            metrics.SCORER_TOKENS.labels("padded").inc(padded)
            metrics.SCORER_TOKENS.labels("real").inc(sum(lengths[i] for i in rows))
        self._collections += 1
        self._rows += len(items)
        self._real += sum(lengths)
        start = 0
        for k, r in enumerate(live):
            if k in failed:
                r.future.set_exception(failed[k])
            else:
                r.future.set_result(results[start : start + len(r.items)])
            start += len(r.items)
