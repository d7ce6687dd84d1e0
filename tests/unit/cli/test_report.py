"""Learning-curve math and report output, against values computed by hand."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from lesslabels.cli import comparison, curves, plots, report
from lesslabels.client import Metrics, Round


def _round(index, labels, acc, f1, count=100, agreement=0.0, selected=10):
    return Round(
        run_id=1,
        index=index,
        labelled_count=labels,
        agreement=agreement,
        selected_count=selected,
        test=Metrics(accuracy=acc, macro_f1=f1, count=count) if count else None,
        train_seconds=1.5,
        score_seconds=0.5,
    )


def test_rows_from_rounds_sorts_skips_unevaluated_and_computes_pool_fraction():
    rounds = [_round(1, 200, 0.8, 0.7), _round(0, 100, 0.6, 0.5), _round(2, 300, 0.0, 0.0, count=0)]
    rows = report.rows_from_rounds(rounds, pool_size=1000)
    assert [r.round for r in rows] == [0, 1]
    assert [r.labels for r in rows] == [100, 200]
    assert rows[0].pool_fraction == pytest.approx(0.1)
    assert rows[1].pool_fraction == pytest.approx(0.2)
    assert rows[1].accuracy == pytest.approx(0.8) and rows[1].macro_f1 == pytest.approx(0.7)


def test_rows_from_rounds_with_unknown_pool_size_gives_zero_fraction():
    rows = report.rows_from_rounds([_round(0, 100, 0.6, 0.5)], pool_size=0)
    assert rows[0].pool_fraction == 0.0


def test_rounds_table_shows_percentages():
    rows = report.rows_from_rounds([_round(0, 50, 0.6, 0.5), _round(1, 100, 0.875, 0.8, agreement=0.9)], 1000)
    table = report.rounds_table(rows).splitlines()
    assert table[0].split()[:2] == ["round", "labels"]
    assert len(table) == 4  # header, rule, two rows
    assert table[2].split()[:5] == ["0", "50", "5.0%", "60.00", "50.00"]
    assert table[3].split()[:6] == ["1", "100", "10.0%", "87.50", "80.00", "90.0"]


def test_csv_and_json_carry_every_row():
    rows = report.rows_from_rounds([_round(0, 50, 0.6, 0.5), _round(1, 100, 0.8, 0.7)], 1000)
    parsed = list(csv.DictReader(io.StringIO(report.rows_to_csv(rows))))
    assert [int(r["labels"]) for r in parsed] == [50, 100]
    assert float(parsed[1]["accuracy"]) == pytest.approx(0.8)
    data = json.loads(report.rows_to_json(rows, run_id=7))
    assert data["run_id"] == 7
    assert [r["macro_f1"] for r in data["rounds"]] == pytest.approx([0.5, 0.7])


def test_auc_is_mean_height_by_trapezoids():
    # 10 * (0.5 + 0.7) / 2 + 10 * (0.7 + 0.9) / 2 = 14, over a range of 20.
    assert curves.curve_auc([0, 10, 20], [0.5, 0.7, 0.9]) == pytest.approx(0.7)
    # (100 * 0.7 + 200 * 0.85) / 300
    assert curves.curve_auc([100, 200, 400], [0.6, 0.8, 0.9]) == pytest.approx(0.8)


def test_auc_sorts_points_and_handles_a_flat_curve():
    assert curves.curve_auc([400, 100, 200], [0.9, 0.6, 0.8]) == pytest.approx(0.8)
    assert curves.curve_auc([1, 5, 9], [0.3, 0.3, 0.3]) == pytest.approx(0.3)


def test_auc_over_a_sub_range_interpolates_the_ends():
    # At 150: 0.7, at 300: 0.85. 50 * 0.75 + 100 * 0.825 = 120, over 150.
    assert curves.curve_auc([100, 200, 400], [0.6, 0.8, 0.9], lo=150, hi=300) == pytest.approx(0.8)


def test_auc_of_a_single_point_is_its_value():
    assert curves.curve_auc([50], [0.6]) == pytest.approx(0.6)


def test_auc_rejects_a_range_outside_the_curve_and_mismatched_lengths():
    with pytest.raises(ValueError, match="outside"):
        curves.curve_auc([100, 200], [0.5, 0.6], lo=50)
    with pytest.raises(ValueError, match="as many"):
        curves.curve_auc([1, 2, 3], [0.5, 0.6])


def test_labels_to_reach():
    assert curves.labels_to_reach([10, 20, 30], [0.5, 0.8, 0.9], 0.8) == 20
    assert curves.labels_to_reach([10, 20, 30], [0.5, 0.8, 0.9], 0.95) is None


def test_mean_curve_same_schedule():
    curve = curves.mean_curve([([10, 20, 30], [0.5, 0.6, 0.7]), ([10, 20, 30], [0.7, 0.8, 0.9])])
    assert curve.labels.tolist() == [10, 20, 30]
    assert curve.mean.tolist() == pytest.approx([0.6, 0.7, 0.8])
    # Sample std of {x - 0.1, x + 0.1} is sqrt(2 * 0.01 / 1).
    assert curve.std.tolist() == pytest.approx([math.sqrt(0.02)] * 3)
    assert curve.n == 2


def test_mean_curve_different_label_counts_uses_the_common_range():
    # A is 0.6 at 20 (between 0.4 and 0.8); B is 0.8 at 30 (between 0.7 and 0.9); B's 40 is outside A.
    curve = curves.mean_curve([([10, 30], [0.4, 0.8]), ([10, 20, 40], [0.6, 0.7, 0.9])])
    assert curve.labels.tolist() == [10, 20, 30]
    assert curve.mean.tolist() == pytest.approx([0.5, 0.65, 0.8])


def test_mean_curve_of_one_curve_has_zero_spread():
    curve = curves.mean_curve([([10, 20], [0.5, 0.6])])
    assert curve.std.tolist() == [0.0, 0.0]


def test_curves_without_overlap_are_rejected():
    with pytest.raises(ValueError, match="share no label range"):
        curves.mean_curve([([10, 20], [0.5, 0.6]), ([30, 40], [0.5, 0.6])])


def test_mean_std():
    assert curves.mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert curves.mean_std([4.0]) == (4.0, 0.0)


def test_summarise_groups_uses_one_range_for_every_area():
    groups = {
        "entropy": {1: ([10, 20, 30], [0.5, 0.7, 0.9]), 2: ([10, 20, 30], [0.5, 0.9, 0.9])},
        "random": {3: ([10, 20], [0.5, 0.6]), 4: ([10, 20], [0.5, 0.6])},
    }
    summaries = {s.name: s for s in comparison.summarise_groups(groups, target=0.85)}
    # Common range is [10, 20]. Run 1: (0.5 + 0.7) / 2 = 0.6; run 2: (0.5 + 0.9) / 2 = 0.7.
    assert summaries["entropy"].auc_mean == pytest.approx(0.65)
    assert summaries["entropy"].auc_std == pytest.approx(math.sqrt(0.005))
    assert summaries["random"].auc_mean == pytest.approx(0.55)
    assert summaries["entropy"].final_accuracy_mean == pytest.approx(0.9)
    # Run 1 reaches 0.85 at 30 labels, run 2 at 20.
    assert summaries["entropy"].labels_to_target_mean == pytest.approx(25.0)
    assert summaries["random"].labels_to_target_mean is None and summaries["random"].reached == 0
    table = comparison.summary_table(list(summaries.values()), target=0.85)
    assert "65.00 ± 7.07" in table and "not reached (0/2)" in table
    curves = comparison.curves_table(list(summaries.values()))
    assert "80.00 ± 14.14" in curves  # entropy at 20 labels: mean 0.8, std sqrt(0.02)


def test_plot_learning_curve_writes_a_png(tmp_path):
    rows = report.rows_from_rounds([_round(0, 50, 0.6, 0.5), _round(1, 100, 0.8, 0.7)], 1000)
    path = plots.plot_learning_curve(rows, tmp_path / "sub" / "curve.png", reference=0.9)
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_comparison_writes_a_png(tmp_path):
    summaries = comparison.summarise_groups({"entropy": {1: ([10, 20], [0.5, 0.7]), 2: ([10, 20], [0.6, 0.8])}})
    path = plots.plot_comparison(summaries, tmp_path / "compare.png")
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_learning_curve([], tmp_path / "x.png")
