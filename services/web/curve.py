"""The learning curve as inline SVG, and the rounds whose accuracy fell sharply. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

#: A round whose test accuracy is this much (absolute) below the previous round's gets a warning.
SHARP_DROP = 0.05


def accuracy_drops(rounds: Sequence[dict], threshold: float = SHARP_DROP) -> dict[int, str]:
    """Round index -> warning, for each round whose accuracy fell by ``threshold`` or more."""
    warnings = {}
    previous = None
    for r in rounds:
        accuracy = r.get("accuracy")
        if accuracy is None:
            continue
        if previous is not None and previous - accuracy >= threshold:
            warnings[r["index"]] = (
                f"accuracy fell from {previous:.1%} to {accuracy:.1%}: check the batch's labels "
                f"(near-identical texts, or a label given by mistake)"
            )
        previous = accuracy
    return warnings


def learning_curve_svg(rounds: Sequence[dict], width: int = 640, height: int = 280) -> dict:
    """Coordinates for the template: accuracy and macro-F1 (0..1) against labels, with axes ticks."""
    points = [r for r in rounds if r.get("accuracy") is not None]
    left, right, top, bottom = 48, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [r["labelled"] for r in points]
    x_min, x_max = (min(xs), max(xs)) if xs else (0, 1)
    if x_max == x_min:
        x_max = x_min + 1

    def x(v: float) -> float:
        return round(left + (v - x_min) / (x_max - x_min) * plot_w, 1)

    def y(v: float) -> float:
        return round(top + (1 - v) * plot_h, 1)

    def series(key: str) -> list[tuple[float, float]]:
        return [(x(r["labelled"]), y(r[key])) for r in points]

    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "bottom": height - bottom,
        "right": width - right,
        "accuracy": series("accuracy"),
        "macro_f1": series("macro_f1"),
        "y_ticks": [(y(v), f"{v:.0%}") for v in (0, 0.25, 0.5, 0.75, 1.0)],
        "x_ticks": [(x(v), str(v)) for v in sorted(set(xs))],
        "empty": not points,
    }
