"""The web import's form: its fields as the pool's import options, and the pool's messages in the
form's words (the pool names the CLI's flags; a person on the page has fields and boxes instead)."""

from __future__ import annotations

import dataclasses
import re

from lesslabels.contract import vocabulary

#: Import formats as the form offers them (the vocabulary's names, as the SDK takes them).
FORMATS = {
    "auto": "guess from the file",
    "csv": "CSV, no header (label,text)",
    "csv-header": "CSV or TSV with a header",
    "jsonl": "JSON lines",
    "parquet": "Parquet",
}
#: A flag the pool's messages name -> what the form calls it.
_FIELDS = {
    "--text-column": "the “Text column” field",
    "--label-column": "the “Label column” field",
    "--id-column": "the “Id column” field",
    "--ignore-extra": "the “Leave out other columns” box",
    "--allow-similar-labels": "the “Allow similar label names” box",
    "--format csv-header": "the format “CSV or TSV with a header”",
    "--format csv": "the format “CSV, no header”",
    "--format jsonl": "the format “JSON lines”",
    "--format": "the “Format” choice",
}
_FLAG = re.compile("|".join(re.escape(flag) for flag in sorted(_FIELDS, key=len, reverse=True)))
_PASS = re.compile(r"\bpass (?=the “)")


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    """What the form asks besides the file: where the rows go and how their columns are read."""

    dataset: str = ""
    split: str = "train"
    format: str = "auto"
    text_column: str = ""
    label_column: str = ""
    id_column: str = ""
    ignore_extra: bool = False
    allow_similar_labels: bool = False

    def problems(self) -> list[str]:
        found = []
        if self.split not in vocabulary.SPLITS:
            found.append(f"unknown split {self.split!r} (train, test or dev)")
        if self.format not in FORMATS:
            found.append(f"unknown format {self.format!r} ({', '.join(FORMATS)})")
        return found


def in_form_words(message: str) -> str:
    """The pool's message with each CLI flag named as the form names it ("pass --ignore-extra" ->
    "tick the “Leave out other columns” box")."""
    named = _FLAG.sub(lambda m: _FIELDS[m.group(0)], message)
    return _PASS.sub("use ", named)
