"""The simulated annotator of an asynchronous simulated run: labels the run's queue as a person would.

A simulated run with ``asynchronous`` and ``annotator_seconds`` > 0 gets its labels from this
thread instead of the synchronous oracle step: it takes the next text of the queue (as
``QueueKeeper.pending`` hands it out), spends ``annotator_seconds`` on it, records its gold label
(the pool's oracle reveal) and reports the new label (``on_labels``), which starts fine-tunes and
refills exactly as a person's labels do. So asynchronous and synchronous rounds can be compared at
equal label counts (bench/README.md). Its pace is wall-clock time: runs are reproducible in their
labels' order only as far as fine-tunes take the same time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from lesslabels import contract
from lesslabels.common import errors
from lesslabels.contract import vocabulary
from lesslabels.coordinator.ports import RunStorePort
from lesslabels.coordinator.queue import QueueKeeper

log = logging.getLogger(__name__)

#: How often an idle annotator looks at an empty queue again.
IDLE_SECONDS = 0.05
#: The name its labels' leases carry.
NAME = "simulated-annotator"


class SimulatedAnnotator:
    """One thread per run; stops when the run is no longer active or ``stop`` is set."""

    def __init__(
        self,
        run_id: int,
        runs: RunStorePort,
        queue: QueueKeeper,
        on_labels: Callable[[int], object],
        stop: threading.Event,
    ):
        self.run_id = run_id
        self.runs = runs
        self.queue = queue
        self.on_labels = on_labels
        self.stop = stop
        self.labelled = 0
        self.thread = threading.Thread(target=self._work, name=f"annotator-{run_id}", daemon=True)

    def start(self) -> SimulatedAnnotator:
        self.thread.start()
        return self

    def alive(self) -> bool:
        return self.thread.is_alive()

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                run = self.runs.get_run(self.run_id)
                if run.state not in vocabulary.ACTIVE_RUN_STATES or run.step == "DONE":
                    return
                if not self._label_one(run):
                    self.stop.wait(IDLE_SECONDS)
        except errors.LessLabelsError as exc:  # the supervisor starts another with the run's next worker
            log.warning("event=annotator_stopped run=%d error=%r", self.run_id, str(exc))
        except Exception:  # noqa: BLE001 - logged; the run goes on, a new worker starts a new annotator
            log.exception("event=annotator_crashed run=%d", self.run_id)

    def _label_one(self, run: contract.Run) -> bool:
        """Spend ``annotator_seconds`` on the next queued text and record its gold label; False when
        the queue is empty."""
        queued = self.queue.pending(run, NAME)
        if not queued:
            return False
        text = queued[0]
        if self.stop.wait(run.config.annotator_seconds):
            return True
        # Under the run's lock, as a person's labels (the orchestrator's _submit_to_queue): once the
        # run is over its queue is closed, and the label of the text in hand is not recorded.
        with self.queue.locks(self.run_id):
            current = self.runs.get_run(self.run_id)
            if current.state not in vocabulary.ACTIVE_RUN_STATES or current.step == "DONE":
                return True
            self.runs.reveal_labels(self.run_id, [text.sample_id], "oracle")
        self.queue.release(self.run_id, [text.sample_id])
        self.labelled += 1
        self.on_labels(self.run_id)
        return True
