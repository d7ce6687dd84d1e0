"""Label names and label sets: what makes two names the same class, and what a valid label set is."""

from __future__ import annotations

from collections.abc import Sequence

from lesslabels.common import errors

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
    near-duplicate of another or padded with spaces."""
    clean: list[str] = []
    for label in labels:
        if not label or not label.strip():
            raise errors.InvalidArgument("labels must not be empty strings")
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
