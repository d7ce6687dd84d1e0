"""Request limits both scorer protocols (ScorerService and the Open Inference Protocol) enforce:
texts per request, and bytes of texts being scored at once."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

from lesslabels.common import errors, metrics

DEFAULT_MAX_TEXTS = 4096
#: Bytes of texts one scorer works on at once (--max-inflight-mb): the default message size limit,
#: so one request of the largest size always runs; scoring costs up to about 3x a request's bytes
#: (bench/README.md), so this bounds what concurrent requests add to about 200 MiB.
DEFAULT_MAX_INFLIGHT_MB = 64
MiB = 1024 * 1024


def check_request_size(n_texts: int, max_texts: int) -> None:
    if n_texts > max_texts:
        raise errors.ResourceExhausted(
            f"{n_texts} texts in one request: the limit is {max_texts} (--max-texts); split the request"
        )


def text_bytes(texts: Iterable[str | bytes]) -> int:
    """UTF-8 bytes of ``texts``, read one at a time: what a request's texts weigh in the budget.
    Not the message's ``ByteSize()``: protobuf's upb serializes the whole message to measure it,
    which took 4x the request in memory at once (bench/README.md, issue 25 F1)."""
    return sum(len(t) if isinstance(t, bytes) else len(t.encode()) for t in texts)


class InFlightBudget:
    """Bytes of texts being scored at once (:func:`text_bytes`), at most ``limit``: a request that
    would pass it while others run is refused with ResourceExhausted (the caller retries later), not
    queued behind them holding its memory. A request alone always runs: the message size limit
    bounds it."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"the in-flight budget must be positive, got {limit}")
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Count ``size`` bytes as in flight for the ``with`` block, or refuse them."""
        with self._lock:
            if self._used and self._used + size > self.limit:
                metrics.SCORER_INFLIGHT_REFUSED.inc()
                raise errors.ResourceExhausted(
                    f"this scorer is already scoring {self._used / MiB:.1f} MiB of requests and this one adds "
                    f"{size / MiB:.1f} MiB: past its budget of {self.limit / MiB:.0f} MiB at once "
                    "(--max-inflight-mb); retry in a moment or send smaller requests"
                )
            self._used += size
            metrics.SCORER_INFLIGHT_BYTES.inc(size)
        try:
            yield
        finally:
            with self._lock:
                self._used -= size
                metrics.SCORER_INFLIGHT_BYTES.dec(size)
