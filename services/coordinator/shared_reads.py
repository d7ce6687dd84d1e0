"""One read of a run's stored state per poll, however many streams watch it.

A WatchRun stream on a run that no worker advances (waiting for labels, paused) learns that the
run ended only from the pool. Each stream reading it once a second made 500 streams cost the pool
500 reads a second; through ``SharedRunReads`` they share one read per run per poll interval: the
first stream past the interval reads, the others wait for that read and take its answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

from lesslabels import contract


@dataclasses.dataclass
class _Entry:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    run: contract.Run | None = None
    read_at: float = 0.0
    watchers: int = 0


class SharedRunReads:
    def __init__(self, read: Callable[[int], contract.Run], clock: Callable[[], float] = time.monotonic):
        self._read = read
        self._clock = clock
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def watching(self, run_id: int) -> Iterator[None]:
        """While a stream watches ``run_id``: its shared read is kept, and forgotten after the last."""
        with self._lock:
            entry = self._entries.setdefault(run_id, _Entry())
            entry.watchers += 1
        try:
            yield
        finally:
            with self._lock:
                entry.watchers -= 1
                if entry.watchers == 0:
                    self._entries.pop(run_id, None)

    def get(self, run_id: int, max_age: float) -> contract.Run:
        """The run as stored, read at most ``max_age`` seconds ago by any watcher (or now)."""
        with self._lock:
            entry = self._entries.get(run_id)
        if entry is None:  # not inside watching(): nothing to share
            return self._read(run_id)
        with entry.lock:
            if entry.run is None or self._clock() - entry.read_at >= max_age:
                entry.run = self._read(run_id)
                entry.read_at = self._clock()
            return entry.run
