"""Strategies compared across seeds: one summary per strategy (mean curve, AUC, final accuracy,
labels to a target), as tables and JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np

from lesslabels.cli.curves import MeanCurve, as_curve, common_range, curve_auc, labels_to_reach, mean_curve, mean_std
from lesslabels.cli.report import format_table


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
        finals = [as_curve(xs, ys)[1][-1] for xs, ys in runs.values()]
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
            row.append(
                f"{s.labels_to_target_mean:.0f}"
                if s.labels_to_target_mean is not None
                else f"not reached ({s.reached}/{len(s.runs)})"
            )
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
