"""The one rule for a run's model: its best round by validation metrics, never test.

Used for checkpoints (the scorer's ``best_of_run``) and for rounds (``report``, the web app), so
the model a run keeps is the same wherever it is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pick_best(items: Sequence[T], validation: Callable[[T], float | None], order: Callable[[T], tuple]) -> T | None:
    """The item with the highest ``validation`` value, a tie going to the later by ``order``.

    Items without a validation value are not candidates. When none has one (small labelled sets are
    trained without a hold-out), the latest by ``order`` is kept: the model trained on the most
    labels. None for no items."""
    if not items:
        return None
    scored = [(value, order(item), item) for item in items if (value := validation(item)) is not None]
    if scored:
        return max(scored, key=lambda s: (s[0], s[1]))[2]
    return max(items, key=order)
