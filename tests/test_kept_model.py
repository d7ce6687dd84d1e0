"""The model a run keeps: its best round by validation metrics (never test), else its latest."""

from __future__ import annotations

from lesslabels.cli import report
from lesslabels.client import Metrics, Round, kept_round
from lesslabels.common.best import pick_best


def _round(index, *, test=None, validation=None, checkpoint="c") -> Round:
    def metrics(acc):
        return Metrics(accuracy=acc, macro_f1=acc, per_class_f1={}, count=10) if acc is not None else None

    return Round(
        run_id=3,
        index=index,
        labelled_count=10 * (index + 1),
        checkpoint_id=f"{checkpoint}{index}" if checkpoint else "",
        test=metrics(test),
        validation=metrics(validation),
    )


def test_best_validation_wins_never_test():
    rounds = [
        _round(0, test=0.99, validation=0.6),
        _round(1, test=0.10, validation=0.8),
        _round(2, test=0.7, validation=0.7),
    ]
    assert kept_round(rounds).index == 1


def test_tie_goes_to_the_later_round_and_rounds_without_validation_are_not_candidates():
    rounds = [_round(0, validation=0.8), _round(1, validation=0.8), _round(2, validation=None)]
    assert kept_round(rounds).index == 1


def test_without_any_validation_the_latest_trained_round_is_kept():
    rounds = [_round(0, test=0.9), _round(1, test=0.2), _round(2, checkpoint="")]  # round 2 not trained yet
    assert kept_round(rounds).index == 1
    assert kept_round([]) is None
    assert pick_best([], lambda x: x, lambda x: (x,)) is None


def test_report_marks_the_kept_round_and_says_how_to_serve_it():
    rounds = [
        _round(0, test=0.99, validation=0.6),
        _round(1, test=0.15, validation=0.9),
        _round(2, test=0.8, validation=0.7),
    ]
    rows = report.rows_from_rounds(rounds, pool_size=100)
    assert [row.kept for row in rows] == [False, True, False]
    table = report.rounds_table(rows).splitlines()
    assert table[3].split()[-2:] == ["90.00", "kept"] and "kept" not in table[2] + table[4]
    line = report.kept_model_line(rounds)
    assert "round 1, checkpoint c1 (best validation accuracy 90.00)" in line and "best_of_run=3" in line
    assert "the latest" in report.kept_model_line([_round(0, test=0.5)])
