"""Parse import files into rows, as a stream. Pure functions: a file in, ``ImportRow``s out one at a
time, or InvalidArgument naming the row.

The file is CSV/TSV (read by the ``csv`` module, its separator sniffed by ``csv.Sniffer`` from the
first lines), JSON lines, or Parquet (``lesslabels.pool.parquet``, through pyarrow). Text files are
UTF-8 (a BOM skipped); UTF-16 and UTF-32 files that start with their byte-order mark are recoded to
UTF-8 first, a block at a time.

``open_import`` reads what every row depends on (the encoding, the format, the columns) and checks
what needs more than one row on the first rows of the file (a header read as data, swapped
columns: ``CHECKED_ROWS``); ``ImportFile.rows()`` then reads the rows from the start of the file,
anew on each call, holding one row at a time. Whether an id repeats within the file is left to the
store, which asks its index once the rows are in (a set of every id would grow with the file).
"""

from __future__ import annotations

import codecs
import contextlib
import tempfile
import csv
import dataclasses
import enum
import functools
import io
import json
import re
from collections.abc import Callable, Generator, Iterator
from typing import IO, TextIO

from lesslabels.common import spreadsheet
from lesslabels.common.errors import InvalidArgument, quote
from lesslabels.common.plaintext import check_name
from lesslabels.pool.labelset import MAX_LABEL_LENGTH

MAX_ID_LENGTH = 256
#: Longest text a sample may have, in characters: a page of samples must fit in one gRPC message
#: however long its texts (at most 4 bytes a character: 400 kB), and the models read a few
#: hundred tokens at most (the scorer cuts texts to a character limit before tokenising).
MAX_TEXT_LENGTH = 100_000

#: The rows, and the characters of text, on which the checks that look at more than one row are
#: made (a header read as data, swapped columns): the first rows of a file show both; the
#: rest is read as it comes.
CHECKED_ROWS = 1000
CHECKED_CHARS = 1_000_000
#: Characters of the first line read to detect the format (a header, or a first row, is far shorter).
FIRST_LINE_CHARS = 1 << 20
#: Bytes read at a time when checking the encoding.
_BLOCK = 1 << 20
#: What ``csv.Sniffer`` looks at to find the separator: the first lines, at most this many characters.
SNIFFED_LINES = 50
SNIFFED_CHARS = 64 * 1024
#: The separators a CSV file may use (comma, tab, semicolon, pipe).
DELIMITERS = ",\t;|"
#: Byte-order marks of the encodings recoded to UTF-8 (UTF-32's first: its little-endian mark
#: starts with UTF-16's), and the bytes of a recoded file held in memory before it goes to disk.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_RECODED_IN_MEMORY = 8 << 20

SPLITS = {"train": "train", "test": "test", "dev": "dev", "validation": "dev", "valid": "dev", "val": "dev"}


class Format(enum.Enum):
    AUTO = "auto"
    CSV_LABEL_TEXT = "csv"
    CSV_HEADER = "csv_header"
    JSONL = "jsonl"
    PARQUET = "parquet"


@dataclasses.dataclass(frozen=True)
class ImportRow:
    row: int  # 0-based data row (header excluded)
    text: str
    label: str | None
    split: str | None  # None = the import's default
    external_id: str | None = None  # the user's own id (--id-column)


#: Rows as a file gives them, one at a time (a generator: closing it stops the reading).
Rows = Generator[ImportRow, None, None]


def recode_to_utf8(file: IO[bytes]) -> IO[bytes]:
    """``file`` itself when it does not start with a UTF-16 or UTF-32 byte-order mark; otherwise a
    new file holding its text as UTF-8 (written a block at a time, spilled to disk past 8 MiB).
    InvalidArgument naming the byte offset of the first bytes that are not of the encoding."""
    file.seek(0)
    start = file.read(4)
    encoding = next((name for bom, name in _BOMS if start.startswith(bom)), None)
    if encoding is None:
        return file
    bom = next(bom for bom, name in _BOMS if name == encoding)
    file.seek(len(bom))
    # A text file's first block holds a line end or a separator: bytes that start like a mark but
    # decode to none are not text of that encoding (check_utf8 then names the first bad byte).
    first = codecs.decode(file.read(_BLOCK - _BLOCK % 4), encoding, "ignore")
    if not any(c in first for c in "\r\n{" + DELIMITERS):
        return file
    file.seek(len(bom))
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    recoded = tempfile.SpooledTemporaryFile(max_size=_RECODED_IN_MEMORY)
    offset = len(bom)
    while True:
        block = file.read(_BLOCK)
        try:
            recoded.write(decoder.decode(block, final=not block).encode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidArgument(
                f"not valid {encoding.upper()[:6]} (byte offset {offset + exc.start}); save the file as UTF-8"
            ) from None
        if not block:
            break
        offset += len(block)
    recoded.seek(0)
    return recoded


def check_utf8(file: IO[bytes]) -> None:
    """InvalidArgument naming the line and byte offset of the first byte of ``file`` that is not
    UTF-8; read from the start, a block at a time."""
    file.seek(0)
    pending, offset, line = b"", 0, 1
    while True:
        block = file.read(_BLOCK)
        data = pending + block
        try:
            _, used = codecs.utf_8_decode(data, "strict", not block)
        except UnicodeDecodeError as exc:
            line += data.count(b"\n", 0, exc.start)
            raise InvalidArgument(
                f"line {line}: not valid UTF-8 (byte offset {offset + exc.start}); save the file as UTF-8"
            ) from None
        if not block:
            return
        line += data.count(b"\n", 0, used)
        pending, offset = data[used:], offset + used


#: Column (CSV header) or key (JSONL) names read as each field when no flag names one.
TEXT_NAMES = ("text", "utterance", "sentence", "query", "question", "message", "content", "document", "review")
LABEL_NAMES = ("label", "intent", "class", "category", "target", "topic")
ID_NAMES = ("id",)
SPLIT_NAMES = ("split",)
#: Columns our own exports add beside label and text: where each label came from in the dataset
#: it was exported from. An import stores labels as the new samples' labels, not as anyone's, so
#: it leaves these out (named in the summary) instead of refusing its own export.
PROVENANCE_NAMES = ("sample_id", "annotator", "labelled_at", "label_source")
#: The summary's entry (in ``ImportFile.columns``) naming the columns or keys left out.
IGNORED = "ignored"


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which column (CSV header name) or JSONL key holds each field; "" = the default names."""

    text: str = ""
    label: str = ""
    id: str = ""
    #: Leave out the columns (keys) no field reads instead of refusing the file.
    ignore_extra: bool = False

    @property
    def given(self) -> bool:
        return bool(self.text or self.label or self.id)


#: The default: every field read from its known names.
DEFAULT_COLUMNS = Columns()


def _flags_hint() -> str:
    return "name the columns with --text-column and --label-column (and --id-column for your own ids)"


def resolve_columns(names: list[str], columns: Columns, where: str) -> dict[str, str]:
    """Map each field (text, label, split, id) to one of ``names`` (a header or the JSONL keys).

    Flags win; otherwise the one known name present is used. Refused: a flag naming no column,
    a field two known names could fill, no text column, and any column nothing reads unless
    ``columns.ignore_extra`` (or it is one of our exports' ``PROVENANCE_NAMES``): those are left
    out, listed under ``IGNORED``."""
    found = ", ".join(repr(n) for n in names)
    mapping: dict[str, str] = {}
    for field, flag, known in (
        ("text", columns.text, TEXT_NAMES),
        ("label", columns.label, LABEL_NAMES),
        ("id", columns.id, ID_NAMES),
        ("split", "", SPLIT_NAMES),
    ):
        if flag:
            if flag not in names:
                raise InvalidArgument(f"{where}: no column {flag!r} for the {field} (found {found})")
            mapping[field] = flag
            continue
        candidates = [n for n in names if n.lower() in known and n not in mapping.values()]
        if len(candidates) > 1:
            how = "rename one" if field == "split" else f"choose one with --{field}-column"
            raise InvalidArgument(f"{where}: columns {candidates} could each be the {field}; {how}")
        if candidates:
            mapping[field] = candidates[0]
    if "text" not in mapping:
        raise InvalidArgument(f"{where}: no text column among {found}; {_flags_hint()}")
    read = list(mapping.values())
    unknown = [n for n in names if n not in read and n.lower() not in PROVENANCE_NAMES]
    if unknown and not columns.ignore_extra:
        what = "keys" if where.startswith("JSON") else "columns"
        # Advice the user has not taken yet: flags already given are not suggested again.
        hint = "pass --ignore-extra to import without them (they are not stored)"
        if not (columns.text and columns.label):
            hint = f"{_flags_hint()} if one of them holds the text or label, or {hint}"
        raise InvalidArgument(
            f"{where}: {what} {unknown} are read as nothing (read: "
            + ", ".join(f"{field}={name!r}" for field, name in mapping.items())
            + f"); {hint}"
        )
    left_out = [n for n in names if n not in read]
    if left_out:
        mapping[IGNORED] = ", ".join(left_out)
    return mapping


def _known_name(cell: str, columns: Columns) -> bool:
    flags = {columns.text, columns.label, columns.id} - {""}
    return cell in flags or cell.lower() in TEXT_NAMES + LABEL_NAMES + ID_NAMES + SPLIT_NAMES


def delimiter(sample: str) -> str:
    """The field separator of a CSV file whose first lines are ``sample``: the one of
    ``DELIMITERS`` that ``csv.Sniffer`` finds splitting them alike; a comma when none does (a file
    of one column)."""
    try:
        return csv.Sniffer().sniff(sample.lstrip(), delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def detect_format(first_line: str, separator: str, columns: Columns = DEFAULT_COLUMNS) -> Format:
    stripped = first_line.lstrip()
    if stripped.startswith("{"):
        return Format.JSONL
    if stripped.startswith("["):
        raise InvalidArgument("the file is a JSON array; write one JSON object per line (JSONL) instead")
    header = [h.strip() for h in next(csv.reader([stripped], delimiter=separator), [])]
    # A first row naming a known column (or one a flag names) is a header (ATIS-style files start with data).
    if columns.given or any(_known_name(h, columns) for h in header):
        return Format.CSV_HEADER
    return Format.CSV_LABEL_TEXT


def normalise_label(label: str) -> str:
    """Runs of whitespace (tabs, newlines, doubled spaces) become one space; ends are stripped."""
    return " ".join(label.split())


def _clean(text: str, keep_whitespace: bool) -> str:
    return text if keep_whitespace else text.strip()


def _unicode(value: str, where: str, what: str) -> str:
    """``value`` unless it holds a lone surrogate (JSON can escape one; no database can store it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{where}: the {what} holds a lone surrogate (character {exc.start + 1})") from None
    return value


def split_value(value: str | None, where: str) -> str | None:
    if value is None or value.strip() == "":
        return None
    key = value.strip().lower()
    if key not in SPLITS:
        raise InvalidArgument(f"{where}: unknown split {quote(value)} (expected train, test or dev)")
    return SPLITS[key]


def label_value(value, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: label must be a string, got {type(value).__name__}")
    value = check_name(normalise_label(_unicode(value, where, "label")), f"{where}: label")
    if len(value) > MAX_LABEL_LENGTH:
        raise InvalidArgument(f"{where}: label {quote(value)} is longer than {MAX_LABEL_LENGTH} characters")
    return value or None


def text_value(value, where: str, keep_whitespace: bool) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: text must be a string, got {type(value).__name__}")
    cleaned = _unicode(_clean(value, keep_whitespace), where, "text")
    if not cleaned.strip():
        raise InvalidArgument(f"{where}: empty text")
    if len(cleaned) > MAX_TEXT_LENGTH:
        raise InvalidArgument(
            f"{where}: text of {len(cleaned):,} characters, longer than the limit of {MAX_TEXT_LENGTH:,}; "
            "shorten or split it"
        )
    return cleaned


class ImportFile:
    """A file opened for import: its format, the column (or key) read for each field, and its rows."""

    def __init__(self, fmt: Format, columns: dict[str, str], read: Callable[[], Rows]):
        self.format = fmt
        self.columns = columns
        self._read = read

    def rows(self) -> Rows:
        """Every row, read from the start of the file (each call reads it again: one reading at a
        time), one at a time. InvalidArgument for the first bad row, naming it (1-based)."""
        return self._read()

    def first_rows(self) -> list[ImportRow]:
        """The rows the checks look at: ``CHECKED_ROWS``, or fewer holding ``CHECKED_CHARS`` of text."""
        taken: list[ImportRow] = []
        chars = 0
        with contextlib.closing(self.rows()) as rows:
            for row in rows:
                taken.append(row)
                chars += len(row.text)
                if len(taken) >= CHECKED_ROWS or chars >= CHECKED_CHARS:
                    break
        return taken


def open_import(
    data: bytes | IO[bytes],
    fmt: Format = Format.AUTO,
    *,
    keep_whitespace: bool = False,
    columns: Columns = DEFAULT_COLUMNS,
) -> ImportFile:
    """Open a file (its bytes, or a seekable binary file, left open) for import.

    Raises InvalidArgument for a file that is not UTF-8, has no rows, or would be misread: a first
    row that looks like a header read as data, columns that look swapped (both judged on the first
    rows), keys or columns nothing reads; and for the first bad row among the first rows."""
    # Imported here: the Parquet reader reads its rows with this module's checks.
    from lesslabels.pool import parquet

    file = io.BytesIO(data) if isinstance(data, bytes) else data
    auto = fmt is Format.AUTO
    if fmt is Format.PARQUET or (auto and parquet.is_parquet(file)):
        return _checked(ImportFile(Format.PARQUET, *parquet.open_parquet(file, columns, keep_whitespace)), columns)
    file = recode_to_utf8(file)
    check_utf8(file)
    with _as_text(file) as text:
        first_line = _first_line(text)
        separator = delimiter(_sample(text, first_line))
    if auto:
        fmt = detect_format(first_line, separator, columns)
    if not first_line:
        raise InvalidArgument("the file is empty")
    read: Callable[[TextIO], Rows]
    if fmt is Format.JSONL:
        with _as_text(file) as text:
            mapping = _jsonl_columns(text, columns)
        read = functools.partial(_jsonl_rows, mapping=mapping, keep_whitespace=keep_whitespace)
    elif fmt is Format.CSV_HEADER:
        with _as_text(file) as text:
            mapping = _csv_columns(text, separator, columns)
        read = functools.partial(
            _csv_header_rows, separator=separator, columns=columns, keep_whitespace=keep_whitespace
        )
    else:
        if columns.given:
            raise InvalidArgument(
                "--text-column, --label-column and --id-column name header columns; "
                "a headerless label,text file has none (add a header line)"
            )
        mapping = {"label": "column 1", "text": "column 2"}
        read = functools.partial(_csv_label_text_rows, separator=separator, keep_whitespace=keep_whitespace)
    return _checked(ImportFile(fmt, mapping, functools.partial(_read, file, read)), columns, auto)


def _checked(opened: ImportFile, columns: Columns, auto: bool = False) -> ImportFile:
    """``opened``, once its first rows are read and show none of the misreadings refused here."""
    first_rows = opened.first_rows()
    if auto and opened.format is Format.CSV_LABEL_TEXT:
        _refuse_header_read_as_data(first_rows)
    if not first_rows:
        raise InvalidArgument("the file has no data rows")
    if not (columns.text or columns.label):
        _refuse_swapped(first_rows, opened.columns)
    return opened


@contextlib.contextmanager
def _as_text(file: IO[bytes]) -> Iterator[TextIO]:
    """``file`` read as text from its start (UTF-8, a BOM skipped, line ends kept as they are for
    the CSV reader); ``file`` stays open after."""
    file.seek(0)
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    try:
        yield text
    finally:
        text.detach()


def _read(file: IO[bytes], read: Callable[[TextIO], Rows]) -> Rows:
    with _as_text(file) as text:
        yield from read(text)


def _sample(text: TextIO, first_line: str) -> str:
    """The first line and up to ``SNIFFED_LINES`` after it (whole lines, at most ``SNIFFED_CHARS``
    characters in all), read on from where ``_first_line`` stopped."""
    lines = [first_line + "\n"]
    size = len(first_line)
    while len(lines) < SNIFFED_LINES and size < SNIFFED_CHARS:
        line = text.readline(SNIFFED_CHARS - size)
        if not line or not line.endswith(("\n", "\r")):
            break  # the end of the file, or a line cut short: the sniffer would read it as a row
        lines.append(line)
        size += len(line)
    return "".join(lines)


def _first_line(text: TextIO) -> str:
    """The first line holding more than whitespace, without its leading whitespace; "" when none does."""
    while line := text.readline(FIRST_LINE_CHARS):
        stripped = line.lstrip()
        if stripped:
            return stripped.splitlines()[0]
    return ""


_WORDLIKE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")


def _refuse_header_read_as_data(rows: list[ImportRow]) -> None:
    """A headerless file whose first row is two lone names used nowhere else (in the rows given),
    while the other classes repeat and the other texts have several words: a header nobody named."""
    if len(rows) < 2:
        return
    first, rest = rows[0], rows[1:]
    label = first.label or ""
    if not (_WORDLIKE.match(label) and _WORDLIKE.match(first.text)):
        return
    if any(r.label == label for r in rest) or any(r.text == first.text for r in rest):
        return
    if not any(len(r.text.split()) > 1 for r in rest):
        return  # texts of one word each: the first row reads like the others
    if len({r.label for r in rest}) == len(rest):
        return  # every class has one example: a lone first class is no sign of a header
    raise InvalidArgument(
        f"line 1: the first row ({label!r}, {first.text!r}) looks like a header, but the file would be read as "
        f"headerless label,text data (the row would become a sample of a class {label!r}); if it is a header, "
        f"{_flags_hint()}, e.g. --text-column {first.text} --label-column {label}; if it is data, "
        "pass --format csv"
    )


def _mean_words(values: list[str]) -> float:
    return sum(len(v.split()) for v in values) / max(len(values), 1)


def _refuse_swapped(rows: list[ImportRow], mapping: dict[str, str]) -> None:
    """Labels that read like texts (long, multi-word, nearly all distinct) next to texts that read
    like labels (short, few distinct): the columns are the wrong way round."""
    labels = [r.label for r in rows if r.label is not None]
    if len(labels) < 4 or len(labels) < len(rows) // 2:
        return
    texts = [r.text for r in rows]
    distinct_labels, distinct_texts = len(set(labels)), len(set(texts))
    label_words, text_words = _mean_words(labels), _mean_words(texts)
    if (
        label_words >= 3
        and text_words <= 2
        and label_words >= 2 * text_words
        and distinct_labels >= len(labels) / 2
        and distinct_texts <= distinct_labels / 2
    ):
        raise InvalidArgument(
            f"the columns look swapped: the label column ({mapping.get('label')}) holds {distinct_labels} "
            f"distinct values of {label_words:.1f} words on average, the text column ({mapping.get('text')}) "
            f"{distinct_texts} distinct values of {text_words:.1f} words; a headerless file is label,text: "
            f"swap the columns, or add a header line and {_flags_hint()}"
        )


def _csv_reader(text: TextIO, separator: str):
    return csv.reader(text, strict=True, delimiter=separator)


def _malformed(row: int, reader, exc: csv.Error) -> InvalidArgument:
    return InvalidArgument(f"row {row} (line {reader.line_num}): malformed CSV: {exc}")


def _blank(fields: list[str]) -> bool:
    return not fields or all(not f.strip() for f in fields)


def _csv_label_text_rows(text: TextIO, separator: str, keep_whitespace: bool) -> Rows:
    reader = _csv_reader(text, separator)
    count = 0
    try:
        for fields in reader:
            if _blank(fields):
                continue
            fields = [spreadsheet.from_cell(f) for f in fields]
            where = f"row {count + 1} (line {reader.line_num})"
            if len(fields) != 2:
                raise InvalidArgument(
                    f"{where}: expected 2 fields 'label,text', got {len(fields)} (quote texts that contain commas)"
                )
            label = label_value(fields[0], where)
            if label is None:
                raise InvalidArgument(f"{where}: empty label")
            yield ImportRow(count, text_value(fields[1], where, keep_whitespace), label, None)
            count += 1
    except csv.Error as exc:
        raise _malformed(count + 1, reader, exc) from None


def external_id(value, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidArgument(f"{where}: id must be a string or an integer, got {type(value).__name__}")
    value = str(value).strip()
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{where}: id longer than {MAX_ID_LENGTH} characters")
    return value or None


def _csv_header(reader, columns: Columns) -> tuple[list[str], dict[str, str]]:
    """The header line's names (stripped) and the column read for each field."""
    header = [h.strip() for h in next(reader)]
    return header, resolve_columns([name for name in header if name], columns, "line 1 (header)")


def _csv_columns(text: TextIO, separator: str, columns: Columns) -> dict[str, str]:
    reader = _csv_reader(text, separator)
    try:
        return _csv_header(reader, columns)[1]
    except csv.Error as exc:
        raise _malformed(1, reader, exc) from None


def _csv_header_rows(text: TextIO, separator: str, columns: Columns, keep_whitespace: bool) -> Rows:
    reader = _csv_reader(text, separator)
    count = 0
    try:
        header, mapping = _csv_header(reader, columns)
        # Unnamed columns (a spreadsheet's trailing separators) are skipped while they stay empty.
        unnamed = [i for i, name in enumerate(header) if not name]
        index = {field: header.index(name) for field, name in mapping.items() if field != IGNORED}
        for fields in reader:
            if _blank(fields):
                continue
            fields = [spreadsheet.from_cell(f) for f in fields]
            where = f"row {count + 1} (line {reader.line_num})"
            if len(fields) != len(header):
                raise InvalidArgument(
                    f"{where}: expected {len(header)} fields, got {len(fields)} (quote texts that contain the separator)"
                )
            filled = [i + 1 for i in unnamed if fields[i].strip()]
            if filled:
                raise InvalidArgument(
                    f"{where}: a value in unnamed column {filled[0]}; name it in the header line or remove it"
                )
            label = label_value(fields[index["label"]], where) if "label" in index else None
            split = split_value(fields[index["split"]], where) if "split" in index else None
            own_id = external_id(fields[index["id"]], where) if "id" in index else None
            text_read = text_value(fields[index["text"]], where, keep_whitespace)
            yield ImportRow(count, text_read, label, split, own_id)
            count += 1
    except csv.Error as exc:
        raise _malformed(count + 1, reader, exc) from None


def _jsonl_objects(text: TextIO) -> Iterator[tuple[str, dict]]:
    """``(where, object)`` for each line that is not blank; InvalidArgument for one that is not a JSON object."""
    count = 0
    for line_number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        count += 1
        where = f"row {count} (line {line_number})"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"{where}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise InvalidArgument(f"{where}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise InvalidArgument(f"{where}: expected a JSON object")
        yield where, obj


def _jsonl_columns(text: TextIO, columns: Columns) -> dict[str, str]:
    """The key read for each field, from the keys of every line (a pass over the whole file)."""
    keys: dict[str, None] = {}
    for _, obj in _jsonl_objects(text):
        keys.update(dict.fromkeys(obj))
    return resolve_columns(list(keys), columns, "JSON keys")


def _jsonl_rows(text: TextIO, mapping: dict[str, str], keep_whitespace: bool) -> Rows:
    for count, (where, obj) in enumerate(_jsonl_objects(text)):
        if mapping["text"] not in obj:
            raise InvalidArgument(f"{where}: no {mapping['text']!r} field")
        split = obj.get(mapping["split"]) if "split" in mapping else None
        if split is not None and not isinstance(split, str):
            raise InvalidArgument(f"{where}: split must be a string")
        yield ImportRow(
            count,
            text_value(obj[mapping["text"]], where, keep_whitespace),
            label_value(obj.get(mapping["label"]), where) if "label" in mapping else None,
            split_value(split, where),
            external_id(obj.get(mapping["id"]), where) if "id" in mapping else None,
        )
