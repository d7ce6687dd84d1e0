"""Per-class F1 on the run page, for 2 or 500 classes: the worst and the best classes of the
latest evaluated round first, the rest folded away, a few recent rounds as columns."""

from __future__ import annotations

import math

#: Classes shown unfolded at each end (worst, best); with few classes all are shown.
SHOWN = 5
#: Evaluated rounds shown as columns, the latest last.
ROUNDS = 4


def per_class_table(rounds: list[dict], shown: int = SHOWN, columns: int = ROUNDS) -> dict:
    """``{"rounds": [index...], "worst": [row], "best": [row], "rest": [row], "count": n}``.

    A row is ``{"label", "f1": [value or None per round column]}``. Rows are ordered by F1 in the
    latest evaluated round (a class missing there counts as worst), ties by name; ``best`` runs
    from the best down. With at most ``2 * shown + 2`` classes everything is in ``worst``.
    """
    evaluated = [r for r in rounds if r.get("per_class_f1")]
    if not evaluated:
        return {"rounds": [], "worst": [], "best": [], "rest": [], "count": 0}
    recent = evaluated[-columns:]
    latest = recent[-1]["per_class_f1"]
    classes = sorted(
        {c for r in evaluated for c in r["per_class_f1"]},
        key=lambda c: (latest.get(c, -math.inf), c.casefold(), c),
    )
    rows = [{"label": c, "f1": [r["per_class_f1"].get(c) for r in recent]} for c in classes]
    view = {"rounds": [r["index"] for r in recent], "count": len(rows)}
    if len(rows) <= 2 * shown + 2:
        return {**view, "worst": rows, "best": [], "rest": []}
    return {**view, "worst": rows[:shown], "best": rows[-shown:][::-1], "rest": rows[shown:-shown]}
