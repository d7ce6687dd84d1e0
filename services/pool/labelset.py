"""Label names and label sets: what makes two names the same class, and what a valid label set is."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from lesslabels.common import errors
from lesslabels.common.plaintext import check_name

MAX_LABEL_LENGTH = 128


def label_key(label: str) -> str:
    """What makes two label names the same class to a person: case and spacing do not count."""
    return " ".join(label.split()).casefold()


def check_not_near_duplicate(label: str, existing: Sequence[str], where: str = "") -> None:
    """Refuse ``label`` when it differs from a label of ``existing`` only in case or spaces."""
    key = label_key(label)
    for other in existing:
        if other != label and label_key(other) == key:
            prefix = f"{where}: " if where else ""
            raise errors.InvalidArgument(
                f"{prefix}label {errors.quote(label)} is a near-duplicate of {errors.quote(other)} (they differ only in case or spaces "
                f"and would become two classes); use one spelling"
            )


def validate_label_set(labels: Sequence[str]) -> list[str]:
    """The label set as given, refused (InvalidArgument) when a label is empty, too long, repeated, a
    near-duplicate of another, padded with spaces or holding a control character."""
    clean: list[str] = []
    for index, label in enumerate(labels):
        if not label or not label.strip():
            raise errors.InvalidArgument("labels must not be empty strings")
        check_name(label, f"labels[{index}]")
        if len(label) > MAX_LABEL_LENGTH:
            raise errors.InvalidArgument(f"label {errors.quote(label)} longer than {MAX_LABEL_LENGTH} characters")
        if label in clean:
            raise errors.InvalidArgument(f"label {errors.quote(label)} given twice")
        check_not_near_duplicate(label, clean)
        if label != label.strip():
            raise errors.InvalidArgument(
                f"label {errors.quote(label)} starts or ends with spaces; give it without them"
            )
        clean.append(label)
    return clean


def _one_edit_apart(a: str, b: str) -> bool:
    """One substitution, insertion or deletion turns ``a`` into ``b``."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    edits = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            edits += max(i2 - i1, j2 - j1)
    return edits == 1


def similar_labels(new: Sequence[str], existing: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs ``(a, b)`` with ``a`` of ``new`` that a person would likely read as one class with
    ``b`` (of ``new`` or ``existing``): names of five or more characters one edit apart, or with a
    difflib ratio of 0.9 or more (``wether`` / ``weather``, ``book_flight`` / ``book_flights``)."""
    pairs: list[tuple[str, str]] = []
    seen: set[frozenset[str]] = set()
    pool = list(dict.fromkeys([*existing, *new]))
    for a in new:
        ka = label_key(a)
        for b in pool:
            kb = label_key(b)
            if a == b or ka == kb or frozenset((a, b)) in seen or min(len(ka), len(kb)) < 5:
                continue
            if _one_edit_apart(ka, kb) or difflib.SequenceMatcher(None, ka, kb, autojunk=False).ratio() >= 0.9:
                seen.add(frozenset((a, b)))
                pairs.append((a, b))
    return pairs
