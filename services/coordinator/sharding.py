"""Scoring a pool over several scorer replicas: ``ScorerReplicas``.

The coordinator is given its scorers as a list of replicas: one client per address
(``--scorer-address host1:port,host2:port``), or one client on a DNS name that resolves to several
addresses, whose channel spreads calls over them (gRPC ``round_robin``, as a Kubernetes headless
Service is used; ``--score-shards`` then says how many parts to cut a round into). A round's scoring
is cut into shards (``lesslabels.contract.shards``: the samples whose id is ``index`` modulo
``count``, drawn by the pool, of the round's random candidates when it has some), one per replica
unless told otherwise; the shards are scored concurrently, each folded by the caller into what it
keeps (a running top-k), and the caller merges the folds. Because the shards of a count split the
samples without overlap or loss, and the fold and merge are exact, the result is the one scoring
unsharded would give.

A shard whose replica fails in a way another replica may not (``UNAVAILABLE``, which includes a
stream that died with its server, and ``DEADLINE_EXCEEDED``) is scored again from the start on the
next replica, what the failed attempt had folded being thrown away, up to ``attempts`` times; then
the round fails with an error naming the shard and every attempt, and the run rides out the
outage as for any unavailable service (the step is redone later, deterministically). Any other
error (a bad request, an unknown checkpoint) fails at once and stops the other shards.

Knows nothing of gRPC: it talks to ``ScorerPort``s and sees domain errors.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from lesslabels.common import errors
from lesslabels.contract.shards import MAX_SHARDS, Shard, all_shards
from lesslabels import contract
from lesslabels.coordinator.ports import Progress, ScorerPort

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts at one shard (each on the next replica) before the round fails.
DEFAULT_ATTEMPTS = 3
#: Pause before attempt n (n >= 2) is RETRY_PAUSE * (n - 1) seconds: long enough for a round-robin
#: channel to see that a replica went away and skip it.
RETRY_PAUSE = 0.2
#: Errors after which a shard is tried again on another replica (DeadlineExceeded is an Unavailable).
RETRYABLE = (errors.Unavailable,)


class ScorerReplicas:
    """Several scorer replicas as one ``ScorerPort``, plus ``map_shards`` for a sharded pass.

    ``replicas``: one port per scorer (or one on a round-robin name); ``names`` for messages;
    ``shards``: parts of a sharded pass, 0 = one per replica; ``attempts``: per shard."""

    def __init__(
        self,
        replicas: Sequence[ScorerPort],
        *,
        names: Sequence[str] = (),
        shards: int = 0,
        attempts: int = DEFAULT_ATTEMPTS,
    ):
        if not replicas:
            raise errors.InvalidArgument("at least one scorer is needed")
        if not 0 <= shards <= MAX_SHARDS:
            raise errors.InvalidArgument(f"score shards must be in 0..{MAX_SHARDS} (0 = one per scorer), got {shards}")
        if attempts < 1:
            raise errors.InvalidArgument(f"score attempts must be at least 1, got {attempts}")
        self.replicas = list(replicas)
        self.names = list(names) or [f"scorer {i}" for i in range(len(self.replicas))]
        if len(self.names) != len(self.replicas):
            raise ValueError(f"{len(self.replicas)} scorers but {len(self.names)} names")
        self.shard_count = shards or len(self.replicas)
        self.attempts = attempts
        self._next = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        for replica in self.replicas:
            close = getattr(replica, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------ a sharded pass

    def map_shards(
        self,
        fold: Callable[[Iterator[contract.PoolScores]], T],
        *,
        what: str,
        samples: contract.SampleQuery,
        progress: Progress | None = None,
        **scoring,
    ) -> list[T]:
        """``fold`` applied to the chunks of each shard of ``samples`` (``scoring``: the other arguments
        of ``ScorerPort.score_pool_chunks``), shards scored concurrently; the folds in shard order. One
        shard of one (no ``shard`` sent) when there is a single part."""
        count = self.shard_count
        shards: list[Shard | None] = list(all_shards(count)) if count > 1 else [None]
        stop = threading.Event()
        tracker = _ProgressSum(progress, len(shards))

        def chunks_until_stopped(chunks: Iterator[contract.PoolScores]) -> Iterator[contract.PoolScores]:
            for chunk in chunks:
                if stop.is_set():  # another shard failed: stop reading (closing the stream cancels it)
                    raise errors.Cancelled(f"{what}: stopped, another shard failed")
                yield chunk

        def run(position: int, shard: Shard | None) -> T:
            failures: list[str] = []
            for attempt in range(self.attempts):
                if attempt:
                    time.sleep(RETRY_PAUSE * attempt)
                if stop.is_set():
                    raise errors.Cancelled(f"{what}: stopped, another shard failed")
                replica = (position + attempt) % len(self.replicas)
                chunks: Iterator[contract.PoolScores] | None = None
                try:
                    chunks = self.replicas[replica].score_pool_chunks(
                        dataclasses.replace(samples, shard=shard), progress=tracker.of(position), **scoring
                    )
                    return fold(chunks_until_stopped(chunks))
                except RETRYABLE as exc:
                    failures.append(f"{self.names[replica]}: {exc}")
                    tracker.restart(position)
                    log.warning(
                        "event=score_shard_failed what=%r shard=%s scorer=%s attempt=%d of=%d error=%r",
                        what,
                        shard or "all",
                        self.names[replica],
                        attempt + 1,
                        self.attempts,
                        str(exc),
                    )
                finally:
                    close = getattr(chunks, "close", None)  # a generator: cancels the stream
                    if close is not None:
                        close()
            raise errors.Unavailable(
                f"{what}: shard {shard or '0/1'} failed on all {self.attempts} attempts ({'; '.join(failures)})"
            )

        if len(shards) == 1:
            return [run(0, shards[0])]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(shards), thread_name_prefix="score-shard")
        try:
            # Each in a copy of this thread's context, so the shards' calls nest in the current span.
            futures = [pool.submit(contextvars.copy_context().run, run, i, shard) for i, shard in enumerate(shards)]
            try:
                return [future.result() for future in futures]
            except BaseException:
                stop.set()
                raise
        finally:
            pool.shutdown(wait=True)

    # ------------------------------------------------------------ ScorerPort, one replica per call

    def score_pool(self, samples: contract.SampleQuery, **scoring) -> contract.PoolScores:
        """``ScorerPort.score_pool`` on one replica (taking turns), on the next one when it is unavailable."""
        start = self._turn()
        failures: list[str] = []
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(RETRY_PAUSE * attempt)
            replica = (start + attempt) % len(self.replicas)
            try:
                return self.replicas[replica].score_pool(samples, **scoring)
            except RETRYABLE as exc:
                failures.append(f"{self.names[replica]}: {exc}")
                log.warning(
                    "event=score_failed scorer=%s attempt=%d error=%r", self.names[replica], attempt + 1, str(exc)
                )
        raise errors.Unavailable(f"scoring failed on all {self.attempts} attempts ({'; '.join(failures)})")

    def score_pool_chunks(self, samples: contract.SampleQuery, **scoring) -> Iterator[contract.PoolScores]:
        """``ScorerPort.score_pool_chunks`` on one replica (taking turns); a failure is the caller's to retry."""
        return self.replicas[self._turn()].score_pool_chunks(samples, **scoring)

    def embed_pool(self, dataset: str, *, base_model: str = "") -> contract.EmbedProgress:
        """``ScorerPort.embed_pool`` over the replicas, concurrently: each embeds the shard it scores
        in a sharded pass (``map_shards``: shard i on replica i), so its own embedding store holds
        what it will read. The progress summed over the shards."""
        count = self.shard_count
        shards: list[Shard | None] = list(all_shards(count)) if count > 1 else [None]

        def run(position: int, shard: Shard | None) -> contract.EmbedProgress:
            replica = self.replicas[position % len(self.replicas)]
            return replica.embed_pool(dataset, base_model=base_model, shard=shard)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(shards), thread_name_prefix="embed-shard") as pool:
            # As in map_shards: each in a copy of this thread's context.
            futures = [pool.submit(contextvars.copy_context().run, run, i, s) for i, s in enumerate(shards)]
            parts = [future.result() for future in futures]
        return contract.EmbedProgress(
            done=sum(p.done for p in parts), total=sum(p.total for p in parts), computed=sum(p.computed for p in parts)
        )

    def _turn(self) -> int:
        with self._lock:
            turn = self._next
            self._next = (self._next + 1) % len(self.replicas)
        return turn


def as_replicas(scorer: ScorerPort | ScorerReplicas) -> ScorerReplicas:
    """``scorer`` itself when it is a ScorerReplicas, else one replica of one shard."""
    return scorer if isinstance(scorer, ScorerReplicas) else ScorerReplicas([scorer])


class _ProgressSum:
    """One progress callback for several shards: the sum of what each has done, out of the sum of their totals."""

    def __init__(self, progress: Progress | None, parts: int):
        self._progress = progress
        self._done = [0] * parts
        self._total = [0] * parts
        self._lock = threading.Lock()

    def of(self, position: int) -> Progress | None:
        progress = self._progress
        if progress is None:
            return None

        def report(done: int, total: int) -> None:
            with self._lock:
                self._done[position], self._total[position] = done, total
                done_all, total_all = sum(self._done), sum(self._total)
            progress(done_all, total_all)

        return report

    def restart(self, position: int) -> None:
        with self._lock:
            self._done[position] = 0
