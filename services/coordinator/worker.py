"""What one run's worker thread shares with the rest of the coordinator: its stop signal, the
run as it last advanced it, and the per-run locks that serialise state changes."""

from __future__ import annotations

import dataclasses
import threading

from lesslabels import contract


class Stopped(Exception):
    """The worker was asked to stop (shutdown or cancel); the run is left as recorded."""


class Pause(Exception):
    """The run waits for something outside the coordinator (human labels)."""


@dataclasses.dataclass
class Worker:
    run_id: int
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    cancelled: bool = False
    finished: bool = False
    #: Set when the worker ended with an outcome (run final, paused, stopped, or recorded FAILED);
    #: a worker that finished without one left its run to be picked up again.
    outcome: bool = False
    thread: threading.Thread | None = None
    job_id: str = ""
    #: The run as this worker last advanced it (RecordStep's reply); None = read it from the pool.
    run: contract.Run | None = None
    #: Training jobs of the current round this worker saw lost (MAX_TRAIN_ATTEMPTS): kept across the
    #: step's outage retries, fresh for a resumed run's new worker.
    train_lost: int = 0

    def check_not_stopped(self) -> None:
        if self.cancelled or self.stop.is_set():
            raise Stopped()


class RunLocks:
    """One lock per run: serialises a run's state changes between its worker, cancel and label
    submissions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, threading.Lock] = {}

    def __call__(self, run_id: int) -> threading.Lock:
        with self._lock:
            return self._by_id.setdefault(run_id, threading.Lock())
