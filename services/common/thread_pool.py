"""The thread pool of every gRPC server: at most ``max_workers`` threads, each started when work
finds no idle thread and ended after ``idle_seconds`` without work.

``concurrent.futures.ThreadPoolExecutor`` keeps every thread it started until it is shut down, and a
server's never is: a flood of response streams left a pool of 10 threads at 536, idle for the rest
of the process's life. grpc needs only ``submit`` (and the futures it returns).
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

#: How long a thread waits for work before it ends.
IDLE_SECONDS = 5.0

_WorkItem = tuple[futures.Future, Callable[..., Any], tuple, dict]


class ElasticThreadPool(futures.Executor):
    """An executor whose threads end when idle. Work that finds every one of ``max_workers`` threads
    busy waits in order for the first to free up (grpc bounds how many calls may wait:
    ``maximum_concurrent_rpcs``)."""

    def __init__(self, max_workers: int, *, idle_seconds: float | None = None, thread_name_prefix: str = "pool"):
        if max_workers <= 0:
            raise ValueError(f"max_workers must be positive, got {max_workers}")
        self.max_workers = max_workers
        self._idle_seconds = IDLE_SECONDS if idle_seconds is None else idle_seconds
        self._prefix = thread_name_prefix
        self._numbers = itertools.count()
        self._changed = threading.Condition()
        self._work: collections.deque[_WorkItem] = collections.deque()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for work
        self._shutdown = False

    @property
    def threads(self) -> int:
        """Threads alive now, busy or idle."""
        with self._changed:
            return len(self._threads)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future:
        future: futures.Future = futures.Future()
        with self._changed:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._work.append((future, fn, args, kwargs))
            # An idle thread takes the work, unless the idle ones are all spoken for already (woken
            # for work queued before, not yet taken): then a new thread, while there is room.
            if self._idle >= len(self._work):
                self._changed.notify()
            elif len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._serve, name=f"{self._prefix}_{next(self._numbers)}", daemon=True)
                self._threads.add(thread)
                thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._shutdown = True
            if cancel_futures:
                while self._work:
                    self._work.popleft()[0].cancel()
            self._changed.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _next(self) -> _WorkItem | None:
        """The next work item, waiting for one; None when this thread should end (idle for
        ``idle_seconds``, or shut down with nothing left to do)."""
        me = threading.current_thread()
        with self._changed:
            self._idle += 1
            try:
                while not self._work:
                    # A wait that timed out as work arrived still finds it queued: taken, not lost.
                    if self._shutdown or (not self._changed.wait(self._idle_seconds) and not self._work):
                        self._threads.discard(me)
                        return None
                return self._work.popleft()
            finally:
                self._idle -= 1

    def _serve(self) -> None:
        while (item := self._next()) is not None:
            future, fn, args, kwargs = item
            del item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - delivered to the future, as ThreadPoolExecutor does
                future.set_exception(exc)
            else:
                future.set_result(result)
                del result
            del future, fn, args, kwargs
