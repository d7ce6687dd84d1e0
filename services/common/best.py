"""The one rule for the model a run keeps, by validation metrics, never test.

Used for checkpoints (the scorer's ``best_of_run``) and for rounds (``report``, the web app), so
the model a run keeps is the same wherever it is asked for.

The rule: keep the latest round with validation metrics, unless an earlier round's validation
accuracy is higher by more than two standard errors of the difference. Each round validates on
its own held-out labels (unless the dataset has a dev split), so raw "highest validation
accuracy" picks noise: on ATIS (demo, 5 rounds) round 0 scored 100 % on its 10 held-out texts and
round 4 93.75 % on 48, while on the test split they scored 95.75 % and 99.25 %. The standard errors
keep the model trained on the most labels unless an earlier one is clearly better, which is
what a collapse looks like (73 % -> 15 % on ten texts each is far past two standard errors).
Without counts (unknown sizes) the comparison is plain: the higher accuracy wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: How many standard errors an earlier round's validation accuracy must lead by to be kept instead.
MARGIN_STANDARD_ERRORS = 2.0


def _variance(accuracy: float, count: int) -> float:
    """Variance of an accuracy measured on ``count`` texts (0 when the count is unknown), with
    add-half smoothing so that 0 % or 100 % on a few texts is not taken as certain."""
    if count <= 0:
        return 0.0
    p = (accuracy * count + 0.5) / (count + 1)
    return p * (1 - p) / count


def pick_best(
    items: Sequence[T], validation: Callable[[T], tuple[float, int] | None], order: Callable[[T], tuple]
) -> T | None:
    """The item a run keeps (see the module docstring); ``validation`` gives (accuracy, count) or
    None, ``order`` the item's place (later = larger). Items without validation are kept only when
    none has it: then the latest. None for no items."""
    if not items:
        return None
    scored = [(value, item) for item in items if (value := validation(item)) is not None]
    if not scored:
        return max(items, key=order)
    (latest_acc, latest_n), latest = max(scored, key=lambda s: order(s[1]))
    (best_acc, best_n), best = max(scored, key=lambda s: (s[0][0], order(s[1])))
    margin = MARGIN_STANDARD_ERRORS * math.sqrt(_variance(latest_acc, latest_n) + _variance(best_acc, best_n))
    return best if best_acc - latest_acc > margin else latest
