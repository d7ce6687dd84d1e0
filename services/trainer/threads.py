"""How many torch threads a training job uses: the CPUs it may really use, less what others use now.

Torch's intra-op threads split every operation and wait for the slowest share. On a machine
where another process holds a core, a thread on that core runs at a fraction of its speed and the
whole step waits for it: beside one CPU-bound neighbour on 2 cores, 2 threads trained at a
fraction of 1 thread's speed (bench/README.md, "Trainer on a busy machine"). So a job that sets
no thread count gets ``round(free CPUs)``, at least 1, where free = the CPUs this process may use
(affinity, cgroup quota) minus the CPU time other processes used over the last interval, read
again every ``every_s`` seconds while it trains. Linux only for the load part (``/proc/stat``):
elsewhere, and when a job sets its threads, the count is fixed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
PROC_STAT = "/proc/stat"


def usable_cpus(cpu_max_path: str = CGROUP_CPU_MAX) -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    try:
        with open(cpu_max_path, encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


@dataclass(frozen=True)
class CpuSample:
    """Busy CPU-seconds of the CPUs we may use (all processes), our own CPU-seconds, and the time."""

    busy_s: float
    own_s: float
    at: float


def read_sample(stat_path: str = PROC_STAT, clock: Callable[[], float] = time.monotonic) -> CpuSample | None:
    """A CpuSample from /proc/stat (the lines of the CPUs in our affinity mask), or None off Linux."""
    try:
        cpus = {f"cpu{i}" for i in os.sched_getaffinity(0)}
        with open(stat_path, encoding="ascii") as f:
            lines = [line.split() for line in f if line.startswith("cpu")]
    except (AttributeError, OSError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = 0
    for fields in lines:
        if fields[0] in cpus:
            # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
            values = [int(v) for v in fields[1:9]]
            busy += sum(values) - values[3] - values[4]
    own = os.times()
    return CpuSample(busy_s=busy / tick, own_s=own.user + own.system, at=clock())


def free_cpus(before: CpuSample, after: CpuSample, usable: int) -> float:
    """CPUs left over by other processes between two samples (our own CPU time does not count)."""
    wall = after.at - before.at
    if wall <= 0:
        return float(usable)
    others = max(0.0, (after.busy_s - before.busy_s) - (after.own_s - before.own_s)) / wall
    return max(0.0, usable - others)


def threads_for(free: float, usable: int) -> int:
    """round(free), within 1..usable."""
    return max(1, min(usable, int(free + 0.5)))


class ThreadGovernor:
    """Sets torch's thread count for one job: fixed when asked (``fixed`` > 0), else from the free
    CPUs, re-read at most every ``every_s`` seconds by ``tick()`` (called between steps)."""

    def __init__(
        self,
        fixed: int = 0,
        *,
        every_s: float = 5.0,
        usable: int | None = None,
        sample: Callable[[], CpuSample | None] = read_sample,
        set_threads: Callable[[int], None] | None = None,
        first_window_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if set_threads is None:
            import torch

            set_threads = torch.set_num_threads
        self.fixed = fixed
        self.every_s = every_s
        self.usable = usable if usable is not None else usable_cpus()
        self._sample = sample
        self._set = set_threads
        self._first_window_s = first_window_s
        self._clock = clock
        self._sleep = sleep
        self._last: CpuSample | None = None
        self.threads = 0
        #: Every count set, in order (the job's log shows them).
        self.changes: list[int] = []

    def start(self) -> int:
        """Choose the first count (one short look at the load) and set it."""
        if self.fixed:
            return self._apply(self.fixed)
        first = self._sample()
        if first is None:
            return self._apply(self.usable)
        self._sleep(self._first_window_s)
        self._last = self._sample()
        if self._last is None:
            return self._apply(self.usable)
        return self._apply(threads_for(free_cpus(first, self._last, self.usable), self.usable))

    def tick(self) -> int:
        """Between steps: every ``every_s`` seconds, re-read the load and change the count if it moved."""
        if self.fixed or self._last is None or self._clock() - self._last.at < self.every_s:
            return self.threads
        now = self._sample()
        if now is None:
            return self.threads
        wanted = threads_for(free_cpus(self._last, now, self.usable), self.usable)
        self._last = now
        return self._apply(wanted) if wanted != self.threads else self.threads

    def _apply(self, threads: int) -> int:
        self._set(threads)
        self.threads = threads
        self.changes.append(threads)
        return threads
