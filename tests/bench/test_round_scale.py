"""The round-scale benchmark's reading of its targets (bench/round_scale.py): the recorded pass/fail
rests on this arithmetic, so it is checked on hand-made results."""

from __future__ import annotations


import pytest

from tests.helpers import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("round_scale.py")


def _round(n, coordinator_peak, import_seconds=1.0, add_seconds=0.5, add=10_000):
    return {
        "n": n,
        "coordinator_peak_mb": coordinator_peak,
        "import_seconds": import_seconds,
        "add_seconds": add_seconds,
        "add": add,
    }


def _scoring(one, two):
    return {"one_scorer": {"texts_per_second": one}, "two_replicas": {"texts_per_second": two}}


def test_targets_are_read_at_100k_and_1m(bench):
    rounds = [_round(1_000_000, 190.0, import_seconds=59.0, add_seconds=2.5), _round(100_000, 120.0)]
    summary = bench.summarise(rounds, _scoring(100.0, 179.0))
    assert summary["coordinator_rss_growth_mb"] == {"value": 70.0, "target": "< 100", "met": True}
    assert summary["import_1m_seconds"]["met"] is True
    assert summary["add_10k_into_1m_seconds"] == {"value": 2.5, "target": "< 2", "met": False}
    # 1.79x is below the 1.8x asked.
    assert summary["replica_speedup"] == {"value": 1.79, "target": ">= 1.8", "met": False}
    assert summary["coordinator_rss_growth_smallest_to_largest_mb"] == {
        "from_n": 100_000,
        "to_n": 1_000_000,
        "value": 70.0,
    }


def test_growth_of_100_mb_or_more_misses(bench):
    summary = bench.summarise([_round(100_000, 100.0), _round(1_000_000, 200.0)], None)
    assert summary["coordinator_rss_growth_mb"]["met"] is False
    assert summary["replica_speedup"] == {"value": None, "target": ">= 1.8", "met": None}


def test_other_sizes_measure_no_target_but_report_the_growth(bench):
    # A smoke run's sizes: no target can be read, and none may be reported as met.
    summary = bench.summarise([_round(2_000, 100.0), _round(20_000, 103.5)], _scoring(100.0, 200.0))
    for name in ("coordinator_rss_growth_mb", "import_1m_seconds", "add_10k_into_1m_seconds"):
        assert summary[name]["met"] is None and summary[name]["value"] is None
    assert summary["coordinator_rss_growth_smallest_to_largest_mb"]["value"] == 3.5
    assert summary["replica_speedup"]["met"] is True


def test_an_add_of_another_size_is_not_read_as_the_10k_target(bench):
    summary = bench.summarise([_round(100_000, 1.0), _round(1_000_000, 1.0, add=5_000, add_seconds=0.1)], None)
    assert summary["add_10k_into_1m_seconds"]["met"] is None


def test_best_rate_takes_the_fastest_run(bench):
    assert bench.best_rate(1000, [4.0, 2.0, 5.0]) == 500.0
