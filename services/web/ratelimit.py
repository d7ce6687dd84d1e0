"""A token bucket per client address: how many login attempts the web app takes, and when the next."""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from collections.abc import Callable


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``burst`` attempts at once per key, then one every ``refill_seconds``. Only the attempts a
    caller ``spend``s count (the web app spends one per refused login). At most ``max_keys`` keys
    are remembered; past it the longest untouched is forgotten (a full bucket, at worst)."""

    def __init__(
        self,
        burst: int = 10,
        refill_seconds: float = 6.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        if burst < 1 or refill_seconds <= 0:
            raise ValueError("burst must be at least 1 and refill_seconds positive")
        self.burst, self.refill_seconds, self.max_keys, self.clock = burst, refill_seconds, max_keys, clock
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) / self.refill_seconds)
            bucket.updated = now
            self._buckets.move_to_end(key)
        return bucket

    def retry_after(self, key: str) -> int:
        """0 when ``key`` may try now; else the whole seconds until it may."""
        with self._lock:
            bucket = self._bucket(key)
            if bucket.tokens >= 1:
                return 0
            return max(1, math.ceil((1 - bucket.tokens) * self.refill_seconds))

    def spend(self, key: str) -> None:
        with self._lock:
            bucket = self._bucket(key)
            bucket.tokens = max(0.0, bucket.tokens - 1)
