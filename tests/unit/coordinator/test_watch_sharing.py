"""WatchRun streams of a run waiting for labels share one read of the pool per poll (issue 25 O1):
500 streams polling it once a second each cost the pool 0.86 of a core."""

from __future__ import annotations

import collections
import threading
import time

from lesslabels import contract
from lesslabels.coordinator.shared_reads import SharedRunReads
from tests.stack import wait_for, wait_for_state


class CountingReads:
    """Delegates to the run store and counts get_run calls (from any thread)."""

    def __init__(self, runs):
        self._runs = runs
        self.calls: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name):
        target = getattr(self._runs, name)

        def call(*args, **kwargs):
            with self._lock:
                self.calls[name] += 1
            return target(*args, **kwargs)

        return call


def test_streams_of_a_waiting_run_share_one_pool_read_per_poll(fake_stack):
    counting = CountingReads(fake_stack.runs)
    core = fake_stack.coordinator(runs=counting)
    run = core.start_run(
        contract.RunConfig(
            dataset="toy",
            oracle="human",
            seed_size=contract.Amount(count=8),
            batch_size=contract.Amount(count=6),
            stopping=contract.StoppingRule(max_rounds=2),
        )
    )
    wait_for_state(fake_stack.runs, run.id, "WAITING_FOR_LABELS")
    wait_for(lambda: not core.active_runs(), what="the worker to stop at the label step")

    streams, poll, seconds = 20, 0.1, 1.5
    stop = threading.Event()
    first_events = threading.Barrier(streams + 1)

    def watch() -> None:
        for _ in core.watch(run.id, lambda: not stop.is_set(), poll=poll):
            first_events.wait(timeout=10)  # each stream's first event: the run's current state

    threads = [threading.Thread(target=watch, daemon=True) for _ in range(streams)]
    for thread in threads:
        thread.start()
    first_events.wait(timeout=10)
    before = counting.calls["get_run"]
    time.sleep(seconds)
    polled = counting.calls["get_run"] - before
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    # One read per poll for the run (about seconds / poll), not one per stream and poll (~300).
    assert polled <= seconds / poll + 3, polled
    assert polled >= seconds / poll / 2  # the streams still follow the stored state


def test_a_shared_read_is_forgotten_with_its_last_watcher():
    reads = []
    shared = SharedRunReads(
        lambda run_id: reads.append(run_id) or contract.Run(run_id, contract.RunConfig(dataset="d"), "X", "Y", 0)
    )
    with shared.watching(7):
        shared.get(7, max_age=60)
        shared.get(7, max_age=60)
        assert reads == [7]
    shared.get(7, max_age=60)  # no watcher left: read again
    assert reads == [7, 7]
