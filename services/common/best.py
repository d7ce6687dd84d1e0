"""The one rule for the model a run keeps, by validation labels, never test.

Used for checkpoints (the scorer's ``best_of_run``, the OIP version ``best``) and for rounds
(``report``, the web app), so the model a run keeps is the same wherever it is asked for.

The rule walks a run's models in order. Each new model is compared with the model kept so far on
the same held-out labels that neither of them trained on (the trainer records the counts, a
:class:`Comparison`): the new model replaces the kept one unless the kept one got more of those
texts right (``kept_only > new_only``); a tie keeps the newer model, which has seen more labels.

Picking a model is a decision, not a hypothesis test: what costs the user is the accuracy lost by
keeping the worse model (regret), not a false alarm. When the two models differ on few texts, the
true difference is small and either choice costs little; when they differ on many, the count
decides rightly. A significance test (exact one-sided McNemar at 5 %, this rule until 2026-12-07)
keeps the newer model until the older one leads by 5 of 5 discordant texts, and so kept a model
1.0 point worse on test in one of nine ATIS runs (the held-out texts said 1 to 0 for the older
one; ``bench/kept_model.py``, bench/README.md). A collapse (73 % -> 15 % on the same texts) is
caught either way.

Comparing accuracies measured on different labels misleads: each round validates on its own
held-out slice of the labels the run acquired, and uncertainty sampling acquires the hard texts,
so later rounds validate on harder texts. A 7-intent run kept round 0 (100 % on its slice, 94.86 %
on test) over rounds scoring 96.6-97.1 % on test. Only where a model carries no comparison
(checkpoints published before comparisons existed, a kept model whose weights are gone, no
held-out labels) does the rule fall back to validation accuracies: the new model replaces the kept
one unless the kept one's validation accuracy is higher by more than two standard errors of the
difference (``MARGIN_STANDARD_ERRORS``); without counts the higher accuracy wins; a model without
validation metrics replaces only a kept model without them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: Fallback without a comparison: how many standard errors an earlier model's validation accuracy
#: must lead by to be kept instead.
MARGIN_STANDARD_ERRORS = 2.0


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A new model against the model its run kept when it was trained, on the same held-out texts
    that neither trained on (paired)."""

    #: Checkpoint id of the kept model it was compared with.
    against: str
    #: Held-out texts both models predicted.
    count: int
    #: Texts only the new model got right.
    new_only: int
    #: Texts only the kept model got right.
    kept_only: int

    def kept_is_better(self) -> bool:
        """Did the kept model get more of the shared held-out texts right? (Ties go to the new one.)"""
        return self.kept_only > self.new_only

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Comparison | None:
        """From ``as_dict``'s form; None for nothing or a malformed record (then the rule falls back)."""
        if not data:
            return None
        try:
            comparison = cls(
                against=str(data["against"]),
                count=int(data["count"]),
                new_only=int(data["new_only"]),
                kept_only=int(data["kept_only"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        valid = comparison.against and 0 <= comparison.new_only and 0 <= comparison.kept_only
        return comparison if valid and comparison.new_only + comparison.kept_only <= comparison.count else None


def _variance(accuracy: float, count: int) -> float:
    """Variance of an accuracy measured on ``count`` texts (0 when the count is unknown), with
    add-half smoothing so that 0 % or 100 % on a few texts is not taken as certain."""
    if count <= 0:
        return 0.0
    p = (accuracy * count + 0.5) / (count + 1)
    return p * (1 - p) / count


def _replaces_by_validation(kept: tuple[float, int] | None, new: tuple[float, int] | None) -> bool:
    """The fallback without a comparison (module docstring)."""
    if new is None or kept is None:
        return new is not None or kept is None
    (kept_acc, kept_n), (new_acc, new_n) = kept, new
    margin = MARGIN_STANDARD_ERRORS * math.sqrt(_variance(kept_acc, kept_n) + _variance(new_acc, new_n))
    return not kept_acc - new_acc > margin


def pick_kept(
    items: Sequence[T],
    *,
    order: Callable[[T], tuple],
    comparison: Callable[[T], Comparison | None],
    validation: Callable[[T], tuple[float, int] | None],
) -> T | None:
    """The item a run keeps (see the module docstring). ``order`` gives the item's place (later =
    larger), ``comparison`` its paired comparison with the model kept when it was trained, and
    ``validation`` its (validation accuracy, texts) for the fallback. None for no items."""
    kept: T | None = None
    for item in sorted(items, key=order):
        if kept is None:
            kept = item
            continue
        paired = comparison(item)
        if paired is not None:
            replaces = not paired.kept_is_better()
        else:
            replaces = _replaces_by_validation(validation(kept), validation(item))
        if replaces:
            kept = item
    return kept
