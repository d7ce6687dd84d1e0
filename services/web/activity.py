"""What the web app counts of people's labelling (``lesslabels.common.metrics``): labels per
annotator, and the time each label took.

Annotator names are typed by people, so the series they make are capped: the first
``metrics.MAX_ANNOTATOR_SERIES`` names a process sees are counted under their own name (cut to
64 characters, as the app accepts them), later ones under ``metrics.OTHER_ANNOTATORS``. The time
per label is the gap between one person's consecutive labels in one run; a gap longer than
``PAUSE_SECONDS`` is a pause, not a label's time. Only the last label of the most recent
``TRACKED`` (run, person) pairs is remembered.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from lesslabels.common import metrics

PAUSE_SECONDS = 300.0
TRACKED = 1024
NAME_CHARS = 64


class LabelActivity:
    def __init__(
        self,
        *,
        max_annotators: int = metrics.MAX_ANNOTATOR_SERIES,
        pause_seconds: float = PAUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._max_annotators = max_annotators
        self._pause = pause_seconds
        self._clock = clock
        self._named: set[str] = set()
        self._last: collections.OrderedDict[tuple[int, str], float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def series(self, annotator: str) -> str:
        """The label value ``annotator`` is counted under."""
        name = annotator[:NAME_CHARS]
        with self._lock:
            if name in self._named:
                return name
            if len(self._named) < self._max_annotators and name != metrics.OTHER_ANNOTATORS:
                self._named.add(name)
                return name
        return metrics.OTHER_ANNOTATORS

    def recorded(self, run_id: int, annotator: str, labels: int = 1) -> None:
        """``annotator`` recorded ``labels`` labels in run ``run_id`` just now."""
        if labels <= 0:
            return
        metrics.WEB_LABELS.labels(self.series(annotator)).inc(labels)
        now, key = self._clock(), (run_id, annotator)
        with self._lock:
            before = self._last.pop(key, None)
            self._last[key] = now
            while len(self._last) > TRACKED:
                self._last.popitem(last=False)
        if before is not None and now - before <= self._pause:
            metrics.WEB_LABEL_SECONDS.observe(now - before)
