"""Recent events per run, for WatchRun streams."""

from __future__ import annotations

import collections
import itertools
import threading

from lesslabels import contract


class EventBus:
    """Recent events per run. Bounded; watchers wake on publish."""

    def __init__(self, keep: int = 200):
        self._cond = threading.Condition()
        self._events: dict[int, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=keep))
        self._seq = itertools.count(1)

    def publish(self, event: contract.RunEvent) -> None:
        with self._cond:
            self._events[event.run.id].append((next(self._seq), event))
            self._cond.notify_all()

    def announce(
        self,
        run: contract.Run,
        round_info: contract.Round | None = None,
        *,
        progress: contract.StepProgress | None = None,
        message: str = "",
    ) -> None:
        """Publish the run's current state with a message (and the round, and a step's progress)."""
        fraction = progress.fraction if progress is not None else 0.0
        self.publish(contract.RunEvent(run, round_info, fraction, message, progress))

    def latest(self, run_id: int) -> contract.RunEvent | None:
        """The run's last event kept here (None before any, or after a restart)."""
        with self._cond:
            events = self._events.get(run_id)
            return events[-1][1] if events else None

    def after(self, run_id: int, seq: int, timeout: float) -> list[tuple[int, contract.RunEvent]]:
        with self._cond:

            def fresh():
                return [(s, e) for s, e in self._events.get(run_id, ()) if s > seq]

            found = fresh()
            if not found:
                self._cond.wait(timeout)
                found = fresh()
            return found

    def last_seq(self, run_id: int) -> int:
        with self._cond:
            events = self._events.get(run_id)
            return events[-1][0] if events else 0
