"""What the label picker is told besides the texts: the order labels come in before a model
exists, and below which probability a suggestion is marked "low confidence" and not pre-selected."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: A suggestion below this probability is shown as "low confidence" and is not pre-selected, so a
#: bare Enter cannot accept it: the person chooses it (key 1) or another label.
LOW_CONFIDENCE = 0.5


def first_batch_order(labels: Iterable[str], frequency: Mapping[str, int]) -> tuple[list[str], str]:
    """The labels to offer without a model, and how they are ordered.

    Most frequent first in the labelled data (``frequency``: labels people gave plus the gold
    labels of the evaluation splits), ties A to Z: ``"frequency"``. With no labelled data at all,
    A to Z: ``"alphabetical"``. Never the import order, which means nothing to a person.
    """
    labels = list(labels)
    counts = {label: frequency.get(label, 0) for label in labels}
    if not any(counts.values()):
        return sorted(labels, key=_name_key), "alphabetical"
    return sorted(labels, key=lambda label: (-counts[label], *_name_key(label))), "frequency"


def _name_key(label: str) -> tuple[str, str]:
    return label.casefold(), label
