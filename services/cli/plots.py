"""Learning curves as PNG files (matplotlib, the ``plot`` extra; imported only when plotting)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from lesslabels.cli.comparison import GroupSummary
from lesslabels.cli.report import RoundRow


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
        (line,) = ax.plot(
            s.curve.labels,
            100 * s.curve.mean,
            marker="o",
            label=f"{s.name} (AUC {100 * s.auc_mean:.1f}, n={s.curve.n})",
        )
        ax.fill_between(
            s.curve.labels,
            100 * (s.curve.mean - s.curve.std),
            100 * (s.curve.mean + s.curve.std),
            color=line.get_color(),
            alpha=0.2,
        )
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
