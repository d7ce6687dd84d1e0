"""The trainer's thread governor: usable CPUs, the free-CPU reading and when the count changes."""

from __future__ import annotations

import os

import pytest

from lesslabels.trainer import threads
from lesslabels.trainer.threads import CpuSample, ThreadGovernor


def test_usable_cpus_is_the_affinity_mask_capped_by_a_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    assert threads.usable_cpus(str(quota)) == affinity
    quota.write_text("50000 100000\n")  # half a CPU still gets one thread
    assert threads.usable_cpus(str(quota)) == 1
    quota.write_text("garbage\n")
    assert threads.usable_cpus(str(quota)) == affinity
    assert threads.usable_cpus(str(tmp_path / "missing")) == affinity


def test_read_sample_sums_busy_time_of_our_cpus_only(tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    tick = os.sysconf("SC_CLK_TCK")
    lines = ["cpu  9999 0 9999 9999 0 0 0 0 0 0"]  # the all-CPU line is not ours to sum
    lines += [f"cpu{i} 100 10 50 5000 40 1 2 3 0 0" for i in cpus]
    lines += [f"cpu{max(cpus) + 1} 7777 0 0 0 0 0 0 0 0 0", "intr 1 2 3"]
    stat = tmp_path / "stat"
    stat.write_text("\n".join(lines) + "\n")
    sample = threads.read_sample(str(stat), clock=lambda: 12.5)
    assert sample is not None and sample.at == 12.5
    assert sample.busy_s == pytest.approx(len(cpus) * 166 / tick)
    assert sample.own_s > 0
    assert threads.read_sample(str(tmp_path / "missing")) is None
    assert threads.read_sample() is not None  # this machine's real /proc/stat


def test_free_cpus_leaves_out_our_own_time():
    before = CpuSample(busy_s=100.0, own_s=10.0, at=0.0)
    # 4 s of wall, 6 CPU-s busy of which 2 ours: others used 1 CPU of 2.
    assert threads.free_cpus(before, CpuSample(106.0, 12.0, 4.0), usable=2) == pytest.approx(1.0)
    # Others used more than we may use: none free (never negative).
    assert threads.free_cpus(before, CpuSample(120.0, 10.0, 4.0), usable=2) == 0.0
    # A clock that did not move tells nothing: everything counts as free.
    assert threads.free_cpus(before, CpuSample(150.0, 10.0, 0.0), usable=2) == 2.0


@pytest.mark.parametrize(("free", "usable", "expected"), [(0.0, 4, 1), (1.4, 4, 1), (1.6, 4, 2), (9.0, 4, 4)])
def test_threads_for_rounds_within_one_and_usable(free, usable, expected):
    assert threads.threads_for(free, usable) == expected


class FakeMachine:
    """Samples scripted as (others' CPUs busy since the last sample, seconds elapsed)."""

    def __init__(self):
        self.now = 0.0
        self.busy = 0.0
        self.others = 0.0
        self.set_calls: list[int] = []
        self.samples = 0

    def sample(self) -> CpuSample:
        self.samples += 1
        return CpuSample(busy_s=self.busy, own_s=0.0, at=self.now)

    def advance(self, seconds: float) -> None:
        self.busy += self.others * seconds
        self.now += seconds


def _governor(machine: FakeMachine, fixed: int = 0) -> ThreadGovernor:
    return ThreadGovernor(
        fixed,
        every_s=5.0,
        usable=2,
        sample=machine.sample,
        set_threads=machine.set_calls.append,
        clock=lambda: machine.now,
        sleep=machine.advance,
    )


def test_a_fixed_count_is_set_once_and_never_changed():
    machine = FakeMachine()
    governor = _governor(machine, fixed=2)
    machine.others = 2.0
    assert governor.start() == 2
    machine.advance(60)
    assert governor.tick() == 2 and machine.set_calls == [2] and machine.samples == 0


def test_auto_starts_from_the_load_and_follows_it_every_interval():
    machine = FakeMachine()
    machine.others = 1.0  # a neighbour holds one of our two CPUs
    governor = _governor(machine)
    assert governor.start() == 1 and machine.set_calls == [1]
    machine.others = 0.0  # the neighbour leaves
    machine.advance(2.0)
    samples = machine.samples
    assert governor.tick() == 1 and machine.samples == samples  # not yet time to look
    machine.advance(3.0)
    assert governor.tick() == 2 and machine.set_calls == [1, 2]
    machine.advance(5.0)
    assert governor.tick() == 2 and machine.set_calls == [1, 2]  # unchanged: not set again
    machine.others = 1.8
    machine.advance(5.0)
    assert governor.tick() == 1 and governor.changes == [1, 2, 1]


def test_auto_without_a_load_reading_uses_every_usable_cpu():
    governor = ThreadGovernor(0, usable=3, sample=lambda: None, set_threads=lambda n: None)
    assert governor.start() == 3 and governor.tick() == 3
