"""CSV and TSV cells a spreadsheet reads as text, never as a formula (OWASP's CSV injection rule).

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (tab and carriage return
too, in some) as a formula: ``=HYPERLINK(...)`` in a text to label would run on the machine of
whoever opens the export. Every CSV/TSV the project writes goes through ``writer`` or
``DictWriter``, which put a single quote before such a cell; the spreadsheet shows the text
without the quote. A cell that starts with a quote gets one more, so ``from_cell`` gives back
exactly what was written: the readers of our own files (``lesslabels import``, ``label import``)
undo the quote, and an export imported again stores the same texts and labels.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import Any

#: First characters a spreadsheet may take as the start of a formula (OWASP), and the quote itself.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def to_cell(value: Any) -> Any:
    """``value`` as a cell no spreadsheet runs: text starting with a formula character (or a quote)
    gets a leading single quote; anything else, numbers included, is unchanged."""
    if isinstance(value, str) and value.startswith((*FORMULA_START, QUOTE)):
        return QUOTE + value
    return value


def from_cell(text: str) -> str:
    """The value ``to_cell`` wrote as ``text``: its leading quote dropped when one was added."""
    if text.startswith(QUOTE) and text[1:].startswith((*FORMULA_START, QUOTE)):
        return text[1:]
    return text


class writer:  # noqa: N801 - named like csv.writer, which it stands for
    """``csv.writer`` whose rows go through ``to_cell``."""

    def __init__(self, stream, **options: Any):
        self._writer = csv.writer(stream, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([to_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class DictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose values go through ``to_cell`` (the header is ours, written as is)."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: to_cell(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for rowdict in rowdicts:
            self.writerow(rowdict)
