"""Learning-curve math: area under a curve, labels needed to reach a score, mean and spread of
curves across seeds. Pure: numbers in, numbers out."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np


def as_curve(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
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
    x, y = as_curve(xs, ys)
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
    x, y = as_curve(xs, ys)
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
    starts, ends = zip(*((min(xs), max(xs)) for xs, _ in curves), strict=False)
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
    parsed = [as_curve(xs, ys) for xs, ys in curves]
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
