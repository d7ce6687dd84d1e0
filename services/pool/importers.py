"""Parse import files into rows. Pure functions: bytes in, ``ImportRow`` list out, or InvalidArgument naming the row."""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import json

from lesslabels.common.errors import InvalidArgument, quote
from lesslabels.pool.labelset import MAX_LABEL_LENGTH

SPLITS = {"train": "train", "test": "test", "dev": "dev", "validation": "dev", "valid": "dev", "val": "dev"}


class Format(enum.Enum):
    AUTO = "auto"
    CSV_LABEL_TEXT = "csv_label_text"
    CSV_HEADER = "csv_header"
    JSONL = "jsonl"


@dataclasses.dataclass(frozen=True)
class ImportRow:
    row: int  # 0-based data row (header excluded)
    text: str
    label: str | None
    split: str | None  # None = the import's default


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidArgument(f"line {line}: not valid UTF-8 (byte offset {exc.start})") from None


def detect_format(text: str) -> Format:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return Format.JSONL
    first_line = stripped.splitlines()[0] if stripped else ""
    header = [h.strip().lower() for h in next(csv.reader([first_line]), [])]
    # A first row naming a "text" or "label" column is a header (ATIS-style files start with data).
    if "text" in header or header[:1] == ["label"]:
        return Format.CSV_HEADER
    return Format.CSV_LABEL_TEXT


def _clean(text: str, keep_whitespace: bool) -> str:
    return text if keep_whitespace else text.strip()


def _unicode(value: str, where: str, what: str) -> str:
    """``value`` unless it holds a lone surrogate (JSON can escape one; no database can store it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{where}: the {what} holds a lone surrogate (character {exc.start + 1})") from None
    return value


def _split(value: str | None, where: str) -> str | None:
    if value is None or value.strip() == "":
        return None
    key = value.strip().lower()
    if key not in SPLITS:
        raise InvalidArgument(f"{where}: unknown split {quote(value)} (expected train, test or dev)")
    return SPLITS[key]


def _label(value, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: label must be a string, got {type(value).__name__}")
    value = _unicode(value.strip(), where, "label")
    if len(value) > MAX_LABEL_LENGTH:
        raise InvalidArgument(f"{where}: label {quote(value)} is longer than {MAX_LABEL_LENGTH} characters")
    return value or None


def _text(value, where: str, keep_whitespace: bool) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: text must be a string, got {type(value).__name__}")
    cleaned = _unicode(_clean(value, keep_whitespace), where, "text")
    if not cleaned.strip():
        raise InvalidArgument(f"{where}: empty text")
    return cleaned


def parse(data: bytes, fmt: Format = Format.AUTO, *, keep_whitespace: bool = False) -> tuple[list[ImportRow], Format]:
    """Parse a whole file. Raises InvalidArgument for the first bad row, naming it (1-based)."""
    text = decode(data)
    if fmt is Format.AUTO:
        fmt = detect_format(text)
    if not text.strip():
        raise InvalidArgument("the file is empty")
    if fmt is Format.JSONL:
        rows = _parse_jsonl(text, keep_whitespace)
    elif fmt is Format.CSV_HEADER:
        rows = _parse_csv_header(text, keep_whitespace)
    else:
        rows = _parse_csv_label_text(text, keep_whitespace)
    if not rows:
        raise InvalidArgument("the file has no data rows")
    return rows, fmt


def _csv_reader(text: str):
    return csv.reader(io.StringIO(text, newline=""), strict=True)


def _parse_csv_label_text(text: str, keep_whitespace: bool) -> list[ImportRow]:
    rows: list[ImportRow] = []
    reader = _csv_reader(text)
    try:
        for fields in reader:
            if not fields or all(not f.strip() for f in fields):
                continue  # blank line
            where = f"row {len(rows) + 1} (line {reader.line_num})"
            if len(fields) != 2:
                raise InvalidArgument(
                    f"{where}: expected 2 fields 'label,text', got {len(fields)} (quote texts that contain commas)"
                )
            label = _label(fields[0], where)
            if label is None:
                raise InvalidArgument(f"{where}: empty label")
            rows.append(ImportRow(len(rows), _text(fields[1], where, keep_whitespace), label, None))
    except csv.Error as exc:
        raise InvalidArgument(f"row {len(rows) + 1} (line {reader.line_num}): malformed CSV: {exc}") from None
    return rows


def _parse_csv_header(text: str, keep_whitespace: bool) -> list[ImportRow]:
    reader = _csv_reader(text)
    rows: list[ImportRow] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
        if "text" not in header:
            raise InvalidArgument("line 1: the header has no 'text' column")
        unknown = set(header) - {"text", "label", "split", "id"}
        if unknown:
            raise InvalidArgument(f"line 1: unknown columns {sorted(unknown)} (allowed: text, label, split, id)")
        index = {name: header.index(name) for name in header}
        for fields in reader:
            if not fields or all(not f.strip() for f in fields):
                continue
            where = f"row {len(rows) + 1} (line {reader.line_num})"
            if len(fields) != len(header):
                raise InvalidArgument(f"{where}: expected {len(header)} fields, got {len(fields)}")
            label = _label(fields[index["label"]], where) if "label" in index else None
            split = _split(fields[index["split"]], where) if "split" in index else None
            rows.append(ImportRow(len(rows), _text(fields[index["text"]], where, keep_whitespace), label, split))
    except csv.Error as exc:
        raise InvalidArgument(f"row {len(rows) + 1} (line {reader.line_num}): malformed CSV: {exc}") from None
    return rows


def _parse_jsonl(text: str, keep_whitespace: bool) -> list[ImportRow]:
    rows: list[ImportRow] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"row {len(rows) + 1} (line {line_number})"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"{where}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise InvalidArgument(f"{where}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise InvalidArgument(f"{where}: expected a JSON object")
        if "text" not in obj:
            raise InvalidArgument(f"{where}: no 'text' field")
        split = obj.get("split")
        if split is not None and not isinstance(split, str):
            raise InvalidArgument(f"{where}: split must be a string")
        rows.append(
            ImportRow(
                len(rows),
                _text(obj["text"], where, keep_whitespace),
                _label(obj.get("label"), where),
                _split(split, where),
            )
        )
    return rows
