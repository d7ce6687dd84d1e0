"""Learning curves: rounds -> table rows, area under a curve, mean and spread across seeds, plots.

Everything here except the ``plot_*`` functions is pure (numbers in, numbers out) and knows
nothing of gRPC: the commands convert ``Round`` messages with :func:`rows_from_rounds` first.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class RoundRow:
    """One round of a run as the report shows it."""

    round: int
    labels: int
    pool_fraction: float  # labels / pool size, 0 when the pool size is unknown
    accuracy: float
    macro_f1: float
    agreement: float
    selected: int
    train_seconds: float
    score_seconds: float


COLUMNS = ("round", "labels", "% of pool", "accuracy", "macro-F1", "agreement", "selected", "train s", "score s")


def rows_from_rounds(rounds: Iterable, pool_size: int) -> list[RoundRow]:
    """``Round`` messages (or anything with the same attributes) -> rows sorted by round index.

    Rounds without test metrics yet (``test.count == 0``) are left out: a curve point needs both axes.
    """
    rows = []
    for r in rounds:
        if not r.test.count:
            continue
        rows.append(
            RoundRow(
                round=int(r.index),
                labels=int(r.labelled_count),
                pool_fraction=(r.labelled_count / pool_size) if pool_size > 0 else 0.0,
                accuracy=float(r.test.accuracy),
                macro_f1=float(r.test.macro_f1),
                agreement=float(r.agreement),
                selected=int(r.selected_count),
                train_seconds=float(r.train_seconds),
                score_seconds=float(r.score_seconds),
            )
        )
    return sorted(rows, key=lambda row: row.round)


def row_cells(row: RoundRow) -> list[str]:
    return [
        str(row.round),
        str(row.labels),
        f"{100 * row.pool_fraction:.1f}%",
        f"{100 * row.accuracy:.2f}",
        f"{100 * row.macro_f1:.2f}",
        f"{100 * row.agreement:.1f}" if row.round > 0 and row.agreement > 0 else "-",
        str(row.selected),
        f"{row.train_seconds:.1f}",
        f"{row.score_seconds:.1f}",
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width text table, numbers right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def rounds_table(rows: Sequence[RoundRow]) -> str:
    return format_table(COLUMNS, [row_cells(r) for r in rows])


def rows_to_records(rows: Sequence[RoundRow]) -> list[dict]:
    return [dataclasses.asdict(r) for r in rows]


def rows_to_csv(rows: Sequence[RoundRow]) -> str:
    out = io.StringIO()
    fields = [f.name for f in dataclasses.fields(RoundRow)]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows_to_records(rows))
    return out.getvalue()


def rows_to_json(rows: Sequence[RoundRow], **extra) -> str:
    return json.dumps({**extra, "rounds": rows_to_records(rows)}, indent=2)


# --------------------------------------------------------------------------- curves


def _as_curve(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(xs, dtype=float)  # [n_points]
    y = np.asarray(ys, dtype=float)  # [n_points]
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"a curve needs as many x as y values, at least one (got {x.shape} and {y.shape})")
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def curve_auc(xs: Sequence[float], ys: Sequence[float], lo: float | None = None, hi: float | None = None) -> float:
    """Area under a learning curve by the trapezoid rule, divided by the label range.

    The result is the curve's mean height over [lo, hi] (so 1.0 is a perfect curve whatever the
    range), which makes curves over different label counts comparable. ``lo``/``hi`` default to
    the curve's own range and must lie within it (the curve is interpolated linearly there).
    A single point (or an empty range) gives the value at that point.
    """
    x, y = _as_curve(xs, ys)
    lo = float(x[0]) if lo is None else float(lo)
    hi = float(x[-1]) if hi is None else float(hi)
    if lo < x[0] - 1e-9 or hi > x[-1] + 1e-9 or hi < lo:
        raise ValueError(f"range [{lo}, {hi}] is outside the curve's labels [{x[0]}, {x[-1]}]")
    if hi == lo:
        return float(np.interp(lo, x, y))
    inside = (x > lo) & (x < hi)
    grid = np.concatenate([[lo], x[inside], [hi]])  # [n_grid]
    values = np.interp(grid, x, y)  # [n_grid]
    area = float(np.sum((grid[1:] - grid[:-1]) * (values[1:] + values[:-1]) / 2.0))
    return area / (hi - lo)


def labels_to_reach(xs: Sequence[float], ys: Sequence[float], target: float) -> float | None:
    """Labels of the first point of the curve at or above ``target``; None if it never gets there."""
    x, y = _as_curve(xs, ys)
    hits = np.nonzero(y >= target - 1e-12)[0]
    return float(x[hits[0]]) if hits.size else None


@dataclasses.dataclass(frozen=True)
class MeanCurve:
    labels: np.ndarray  # [n_points]
    mean: np.ndarray  # [n_points]
    std: np.ndarray  # [n_points] sample standard deviation (ddof=1), 0 for a single curve
    n: int  # number of curves averaged


def common_range(curves: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[float, float]:
    """The label range every curve covers: [max of the starts, min of the ends]."""
    if not curves:
        raise ValueError("no curves")
    starts, ends = zip(*((min(xs), max(xs)) for xs, _ in curves), strict=True)
    lo, hi = max(starts), min(ends)
    if hi < lo:
        raise ValueError(f"the curves share no label range (starts up to {lo}, ends from {hi})")
    return float(lo), float(hi)


def mean_curve(curves: Sequence[tuple[Sequence[float], Sequence[float]]]) -> MeanCurve:
    """Mean and spread of several curves (one per seed) on the union of their label counts.

    Points are taken where every curve is defined (the common range), each curve interpolated
    linearly between its own points. With the same schedule on the same data, every seed has the
    same label counts and nothing is interpolated.
    """
    lo, hi = common_range(curves)
    parsed = [_as_curve(xs, ys) for xs, ys in curves]
    grid = np.unique(np.concatenate([x[(x >= lo) & (x <= hi)] for x, _ in parsed]))  # [n_points]
    values = np.stack([np.interp(grid, x, y) for x, y in parsed])  # [n_curves, n_points]
    std = values.std(axis=0, ddof=1) if len(parsed) > 1 else np.zeros_like(grid)
    return MeanCurve(labels=grid, mean=values.mean(axis=0), std=std, n=len(parsed))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for fewer than two values)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    """One strategy across seeds."""

    name: str
    runs: tuple[int, ...]
    curve: MeanCurve
    auc_mean: float
    auc_std: float
    final_accuracy_mean: float
    final_accuracy_std: float
    final_labels: float
    labels_to_target_mean: float | None  # None when no reference is given or a seed never got there
    reached: int  # seeds that reached the target


def summarise_groups(
    groups: dict[str, dict[int, tuple[Sequence[float], Sequence[float]]]], target: float | None = None
) -> list[GroupSummary]:
    """``{strategy: {run_id: (labels, accuracies)}}`` -> one summary per strategy.

    Every run's area under the curve is taken over the label range all runs of all groups share,
    so that the areas compare like with like.
    """
    all_curves = [c for runs in groups.values() for c in runs.values()]
    lo, hi = common_range(all_curves)
    out = []
    for name, runs in groups.items():
        aucs = [curve_auc(xs, ys, lo, hi) for xs, ys in runs.values()]
        finals = [_as_curve(xs, ys)[1][-1] for xs, ys in runs.values()]
        reach = [labels_to_reach(xs, ys, target) for xs, ys in runs.values()] if target is not None else []
        reached = [r for r in reach if r is not None]
        auc_mean, auc_std = mean_std(aucs)
        fin_mean, fin_std = mean_std(finals)
        curve = mean_curve(list(runs.values()))
        out.append(
            GroupSummary(
                name=name,
                runs=tuple(runs),
                curve=curve,
                auc_mean=auc_mean,
                auc_std=auc_std,
                final_accuracy_mean=fin_mean,
                final_accuracy_std=fin_std,
                final_labels=float(curve.labels[-1]),
                labels_to_target_mean=(
                    float(np.mean(reached)) if target is not None and len(reached) == len(reach) else None
                ),
                reached=len(reached),
            )
        )
    return out


def summary_table(summaries: Sequence[GroupSummary], target: float | None = None) -> str:
    headers = ["strategy", "runs", "AUC (mean ± std)", "final acc (mean ± std)", "at labels"]
    if target is not None:
        headers.append(f"labels to {100 * target:.1f}")
    rows = []
    for s in summaries:
        row = [
            s.name,
            str(len(s.runs)),
            f"{100 * s.auc_mean:.2f} ± {100 * s.auc_std:.2f}",
            f"{100 * s.final_accuracy_mean:.2f} ± {100 * s.final_accuracy_std:.2f}",
            f"{s.final_labels:.0f}",
        ]
        if target is not None:
            row.append(f"{s.labels_to_target_mean:.0f}" if s.labels_to_target_mean is not None
                       else f"not reached ({s.reached}/{len(s.runs)})")
        rows.append(row)
    return format_table(headers, rows)


def curves_table(summaries: Sequence[GroupSummary]) -> str:
    """Mean ± std accuracy per label count, one column per strategy."""
    grid = np.unique(np.concatenate([s.curve.labels for s in summaries]))
    rows = []
    for x in grid:
        row = [f"{x:.0f}"]
        for s in summaries:
            hit = np.nonzero(np.isclose(s.curve.labels, x))[0]
            row.append(f"{100 * s.curve.mean[hit[0]]:.2f} ± {100 * s.curve.std[hit[0]]:.2f}" if hit.size else "")
        rows.append(row)
    return format_table(["labels"] + [s.name for s in summaries], rows)


def summaries_to_json(summaries: Sequence[GroupSummary], **extra) -> str:
    return json.dumps(
        {
            **extra,
            "strategies": [
                {
                    "strategy": s.name,
                    "runs": list(s.runs),
                    "auc_mean": s.auc_mean,
                    "auc_std": s.auc_std,
                    "final_accuracy_mean": s.final_accuracy_mean,
                    "final_accuracy_std": s.final_accuracy_std,
                    "labels_to_target_mean": s.labels_to_target_mean,
                    "curve": {
                        "labels": s.curve.labels.tolist(),
                        "mean": s.curve.mean.tolist(),
                        "std": s.curve.std.tolist(),
                    },
                }
                for s in summaries
            ],
        },
        indent=2,
    )


# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curve(
    rows: Sequence[RoundRow], path: str | pathlib.Path, *, title: str = "", reference: float | None = None
) -> pathlib.Path:
    """Accuracy and macro-F1 against labels used, written as a PNG."""
    if not rows:
        raise ValueError("no evaluated rounds to plot")
    plt = _pyplot()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    labels = [r.labels for r in rows]
    ax.plot(labels, [100 * r.accuracy for r in rows], marker="o", label="accuracy")
    ax.plot(labels, [100 * r.macro_f1 for r in rows], marker="s", linestyle="--", label="macro-F1")
    if reference is not None:
        ax.axhline(100 * reference, color="grey", linestyle=":", label=f"reference {100 * reference:.1f}")
    _decorate(ax, title or "learning curve")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def plot_comparison(
    summaries: Sequence[GroupSummary], path: str | pathlib.Path, *, title: str = "", reference: float | None = None
) -> pathlib.Path:
    """Mean learning curve of each strategy with a ±1 std band, in one PNG."""
    if not summaries:
        raise ValueError("nothing to plot")
    plt = _pyplot()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for s in summaries:
        line, = ax.plot(s.curve.labels, 100 * s.curve.mean, marker="o",
                        label=f"{s.name} (AUC {100 * s.auc_mean:.1f}, n={s.curve.n})")
        ax.fill_between(s.curve.labels, 100 * (s.curve.mean - s.curve.std), 100 * (s.curve.mean + s.curve.std),
                        color=line.get_color(), alpha=0.2)
    if reference is not None:
        ax.axhline(100 * reference, color="grey", linestyle=":", label=f"reference {100 * reference:.1f}")
    _decorate(ax, title or "learning curves (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def _decorate(ax, title: str) -> None:
    ax.set_xlabel("labelled samples")
    ax.set_ylabel("test score (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
