"""The model a run keeps: by validation metrics (never test), the latest unless an earlier round
is clearly better (more than two standard errors of validation accuracy)."""

from __future__ import annotations

import pytest

from lesslabels.cli import report
from lesslabels.client import Metrics, Round, kept_round
from lesslabels.common.best import pick_best


def _metrics(acc, count):
    return Metrics(accuracy=acc, macro_f1=acc, per_class_f1={}, count=count) if acc is not None else None


def _round(index, *, test=None, validation=None, count=50, checkpoint="c") -> Round:
    return Round(
        run_id=3,
        index=index,
        labelled_count=10 * (index + 1),
        checkpoint_id=f"{checkpoint}{index}" if checkpoint else "",
        test=_metrics(test, 100),
        validation=_metrics(validation, count),
    )


def test_a_collapse_keeps_the_earlier_round_never_judged_by_test():
    # The case: 73 % -> 15 % once a batch of near-duplicates was labelled; round 0 also had
    # the worst test accuracy, which must not matter.
    rounds = [_round(0, test=0.10, validation=0.73, count=10), _round(1, test=0.99, validation=0.15, count=10)]
    assert kept_round(rounds).index == 0


def test_noise_on_small_validation_sets_keeps_the_latest():
    # The demo's numbers: round 0 100 % on 10 held-out texts, round 4 93.75 % on 48.
    rounds = [
        _round(0, validation=1.0, count=10),
        _round(1, validation=0.8947, count=19),
        _round(4, validation=0.9375, count=48),
    ]
    assert kept_round(rounds).index == 4


def test_a_clear_lead_on_large_validation_sets_wins():
    rounds = [_round(0, validation=0.95, count=2000), _round(1, validation=0.90, count=2000)]
    assert kept_round(rounds).index == 0
    # Equal accuracy: the later round.
    assert kept_round([_round(0, validation=0.9, count=2000), _round(1, validation=0.9, count=2000)]).index == 1


def test_without_any_validation_the_latest_trained_round_is_kept():
    rounds = [_round(0, test=0.9), _round(1, test=0.2), _round(2, checkpoint="")]  # round 2 not trained yet
    assert kept_round(rounds).index == 1
    assert kept_round([]) is None
    assert pick_best([], lambda x: (1.0, 1), lambda x: (x,)) is None


@pytest.mark.parametrize("count", [0])
def test_unknown_sizes_compare_plainly(count):
    items = [("a", 0.8, 0), ("b", 0.7, 1)]
    assert pick_best(items, lambda i: (i[1], count), lambda i: (i[2],))[0] == "a"


def test_report_marks_the_kept_round_and_says_how_to_serve_it():
    rounds = [
        _round(0, test=0.73, validation=0.75, count=12),
        _round(1, test=0.15, validation=0.1, count=20),
        _round(2, test=0.2, validation=0.2, count=20),
    ]
    rows = report.rows_from_rounds(rounds, pool_size=100)
    assert [row.kept for row in rows] == [True, False, False]
    table = report.rounds_table(rows).splitlines()
    assert table[2].split()[-2:] == ["75.00", "kept"] and "kept" not in table[3] + table[4]
    line = report.kept_model_line(rounds)
    assert "round 0, checkpoint c0 (validation accuracy 75.00 on 12 texts" in line and "best_of_run=3" in line
    assert "the latest: no round has validation metrics" in report.kept_model_line([_round(0, test=0.5)])
