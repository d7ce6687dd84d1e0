"""Read import files as a stream of checked DataFrames: a file in, ``pandas.DataFrame`` chunks out
(columns ``row``, ``text``, ``label``, ``split``, ``external_id``), or InvalidArgument naming the row.

CSV/TSV is read by ``pandas.read_csv`` (its C parser, every cell a string), the separator sniffed
by ``csv.Sniffer`` from the first lines; Parquet by pyarrow (``lesslabels.pool.parquet``); JSON
lines by ``json``, a line at a time (``pandas.read_json`` would misread them: it drops lone
surrogates, makes integer ids floats beside a missing one and names no line). Text files are UTF-8
(a BOM skipped), or UTF-16/UTF-32 that start with their byte-order mark; a file is checked to
decode before it is read. pandas is imported when a file is read, not with this module.

``open_import`` reads what every chunk depends on (the encoding, the format, the columns) and checks
what needs more than one row on the first rows of the file (a header read as data, swapped
columns: ``CHECKED_ROWS``); ``ImportFile.frames()`` then reads the file from its start, anew on each
call, holding one chunk: at most ``CHUNK_ROWS`` rows, fewer when their texts are long. Each value is
checked in its chunk (the first bad row is named); whether an id repeats within the file is left to
the store, which asks its index once the rows are in (a set of every id would grow with the file).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import enum
import functools
import io
import itertools
import json
import re
from collections.abc import Callable, Generator, Iterator
from typing import IO, TYPE_CHECKING, Any

from lesslabels.common import spreadsheet
from lesslabels.common.errors import InvalidArgument, quote
from lesslabels.common.plaintext import check_name
from lesslabels.pool.labelset import MAX_LABEL_LENGTH

if TYPE_CHECKING:
    import pandas as pd


def load_readers() -> None:
    """Import pandas (and the pyarrow it loads) now: ``lesslabels pool`` calls this before it
    serves, so that the ~66 MiB of the libraries are the process's from its start and the first
    import's memory and time are the import's own (importing this module does not load them)."""
    import pandas  # noqa: F401


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
#: Rows read at a time (the first chunk: ``FIRST_CHUNK_ROWS``); each next chunk is sized from the
#: texts of the one before to hold about ``CHUNK_CHARS`` characters of text, so a file of long
#: texts is read a few rows at a time.
CHUNK_ROWS = 1000
FIRST_CHUNK_ROWS = 100
CHUNK_CHARS = 4_000_000
#: Bytes read at a time when checking the encoding.
_BLOCK = 1 << 20
#: What ``csv.Sniffer`` looks at to find the separator: the first lines, at most this many bytes.
SNIFFED_LINES = 50
SNIFFED_BYTES = 64 * 1024
#: The separators a CSV file may use (comma, tab, semicolon, pipe).
DELIMITERS = ",\t;|"
#: Byte-order marks of the other encodings read (UTF-32's first: its little-endian mark starts
#: with UTF-16's), by the name of their ``codecs`` decoder.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf_32_le"),
    (codecs.BOM_UTF32_BE, "utf_32_be"),
    (codecs.BOM_UTF16_LE, "utf_16_le"),
    (codecs.BOM_UTF16_BE, "utf_16_be"),
)
#: A line end as the CSV parser reads one (inside a quoted field too).
_LINE_END = re.compile(r"\r\n?|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")

SPLITS = {"train": "train", "test": "test", "dev": "dev", "validation": "dev", "valid": "dev", "val": "dev"}


class Format(enum.Enum):
    AUTO = "auto"
    CSV_LABEL_TEXT = "csv"
    CSV_HEADER = "csv_header"
    JSONL = "jsonl"
    PARQUET = "parquet"


#: What a reader gives: ``take(n)`` returns the next chunk of about ``n`` rows, checked, or None
#: at the end of the file.
Take = Callable[[int], "pd.DataFrame | None"]


def text_encoding(file: IO[bytes]) -> str:
    """The encoding to read a text file with: UTF-16 or UTF-32 when it starts with their
    byte-order mark and its first block decodes to text holding a line end or a separator, else
    UTF-8 (a BOM skipped). InvalidArgument naming the line and byte offset of the first bytes that
    are not of that encoding."""
    file.seek(0)
    start = file.read(_BLOCK)
    name, bom = "utf_8", b""
    mark, candidate = next(((m, n) for m, n in _BOMS if start.startswith(m)), (b"", ""))
    if candidate:
        body = start[len(mark) :]
        first = codecs.decode(body[: len(body) - len(body) % 4], candidate, "ignore")
        if any(c in first for c in "\r\n{" + DELIMITERS):
            name, bom = candidate, mark
    decode = getattr(codecs, f"{name}_decode")
    shown = name[:6].upper().replace("_", "-")
    file.seek(len(bom))
    pending, offset, line = b"", len(bom), 1
    while True:
        block = file.read(_BLOCK)
        data = pending + block
        try:
            text, used = decode(data, "strict", not block)
        except UnicodeDecodeError as exc:
            line += decode(data[: exc.start], "ignore", True)[0].count("\n")
            raise InvalidArgument(
                f"line {line}: not valid {shown} (byte offset {offset + exc.start}); save the file as UTF-8"
            ) from None
        if not block:
            return "utf-8-sig" if name == "utf_8" else name[:6].replace("_", "-")  # the codec reads the mark
        line += text.count("\n")
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


def normalise_label(label: str) -> str:
    """Runs of whitespace (tabs, newlines, doubled spaces) become one space; ends are stripped."""
    return " ".join(label.split())


def _unicode(value: str, where: str, what: str) -> str:
    """``value`` unless it holds a lone surrogate (JSON can escape one; no database can store it)."""
    if found := _SURROGATE.search(value):
        raise InvalidArgument(f"{where}: the {what} holds a lone surrogate (character {found.start() + 1})")
    return value


def split_value(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: split must be a string")
    if value.strip() == "":
        return None
    key = value.strip().lower()
    if key not in SPLITS:
        raise InvalidArgument(f"{where}: unknown split {quote(value)} (expected train, test or dev)")
    return SPLITS[key]


def label_value(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: label must be a string, got {type(value).__name__}")
    value = check_name(normalise_label(_unicode(value, where, "label")), f"{where}: label")
    if len(value) > MAX_LABEL_LENGTH:
        raise InvalidArgument(f"{where}: label {quote(value)} is longer than {MAX_LABEL_LENGTH} characters")
    return value or None


def external_id(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidArgument(f"{where}: id must be a string or an integer, got {type(value).__name__}")
    value = _unicode(str(value).strip(), where, "id")
    if "\x00" in value:
        raise InvalidArgument(f"{where}: the id holds a NUL character (\\x00)")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{where}: id longer than {MAX_ID_LENGTH} characters")
    return value or None


class Problems:
    """The first bad row of a chunk, whichever check finds it (a tie goes to the check made first);
    ``raise_first()`` raises it. The chunk has a ``row`` column (0-based) and, for text files, a
    ``line`` column: each row is named ``row N (line L)``."""

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        self._first: tuple[int, str] | None = None

    def add_at(self, position: int, message: str) -> None:
        """``message``: what is wrong with the row at ``position``, after the row's name."""
        if self._first is None or position < self._first[0]:
            found = self._frame.iloc[position]
            where = f"row {found['row'] + 1}" + (f" (line {found['line']})" if "line" in self._frame else "")
            self._first = (position, f"{where}: {message}")

    def add(self, failed: pd.Series, message: str | Callable[[int], str]) -> None:
        """``failed``: one bool a row; ``message`` (or ``message(position)``) says what is wrong with the first."""
        if failed.any():
            position = int(failed.to_numpy().argmax())
            self.add_at(position, message if isinstance(message, str) else message(position))

    def raise_first(self) -> None:
        if self._first is not None:
            raise InvalidArgument(self._first[1])


def _by_value(values: pd.Series, check: Callable[[Any, str], Any], problems: Problems) -> list[Any]:
    """``check(value, where)`` of every value, made once per distinct value (a column of labels
    has few); a value it refuses is a problem of the first row having it."""
    cleaned: dict[Any, Any] = {}
    out = []
    for position, value in enumerate(values.tolist()):
        key = (type(value), value) if isinstance(value, str | int | None) else position  # lists: each alone
        if key not in cleaned:
            try:
                cleaned[key] = check(value, "")
            except InvalidArgument as exc:
                problems.add_at(position, str(exc).removeprefix(": "))
                cleaned[key] = None
        out.append(cleaned[key])
    return out


def checked(frame: pd.DataFrame, problems: Problems, keep_whitespace: bool) -> pd.DataFrame:
    """The rows of ``frame`` (columns ``row``, ``text`` and any of ``label``, ``split``, ``id``,
    values as read) with their values checked and cleaned: texts stripped (unless
    ``keep_whitespace``), labels' whitespace normalised, splits named as the vocabulary names them.
    InvalidArgument for the first bad row among those and ``problems`` already found."""
    import pandas as pd

    text = frame["text"]
    strings = text.map(lambda v: isinstance(v, str)).astype(bool)
    problems.add(
        ~strings,
        lambda i: (
            "empty text (null)" if text.iloc[i] is None else f"text must be a string, got {type(text.iloc[i]).__name__}"
        ),
    )
    text = text.where(strings, "").astype(object)
    if not keep_whitespace:
        text = text.str.strip()
    problems.add(
        text.str.contains(_SURROGATE),
        lambda i: f"the text holds a lone surrogate (character {_SURROGATE.search(text.iloc[i]).start() + 1})",  # type: ignore[union-attr]
    )
    problems.add(text.str.contains("\x00", regex=False), "the text holds a NUL character (\\x00)")
    problems.add(text.str.strip() == "", "empty text")
    lengths = text.str.len()
    problems.add(
        lengths > MAX_TEXT_LENGTH,
        lambda i: (
            f"text of {lengths.iloc[i]:,} characters, longer than the limit of {MAX_TEXT_LENGTH:,}; shorten or split it"
        ),
    )
    out = frame[["row"]].assign(text=text)
    for field, check, name in (
        ("label", label_value, "label"),
        ("split", split_value, "split"),
        ("id", external_id, "external_id"),
    ):
        values = _by_value(frame[field], check, problems) if field in frame else [None] * len(frame)
        out[name] = pd.Series(values, index=frame.index, dtype=object)  # None, not NaN, where there is none
    problems.raise_first()
    return out


def chunks(take: Take) -> Iterator[pd.DataFrame]:
    """The chunks ``take`` gives, asked for ``FIRST_CHUNK_ROWS`` rows and then as many as hold
    about ``CHUNK_CHARS`` characters of text (at most ``CHUNK_ROWS``); empty ones left out."""
    size = FIRST_CHUNK_ROWS
    while (frame := take(size)) is not None:
        if len(frame):
            chars = max(int(frame["text"].str.len().sum()), 1)
            size = max(1, min(CHUNK_ROWS, len(frame) * CHUNK_CHARS // chars))
            yield frame


class ImportFile:
    """A file opened for import: its format, the column (or key) read for each field, and its rows."""

    def __init__(
        self, fmt: Format, columns: dict[str, str], reader: Callable[[], contextlib.AbstractContextManager[Take]]
    ):
        self.format = fmt
        self.columns = columns
        self._reader = reader

    def frames(self) -> Generator[pd.DataFrame]:
        """Every row, read from the start of the file (each call reads it again: one reading at a
        time), a checked chunk at a time. InvalidArgument for the first bad row, naming it (1-based)."""
        with self._reader() as take:
            yield from chunks(take)

    def first_rows(self) -> pd.DataFrame:
        """The rows the checks look at: ``CHECKED_ROWS``, or fewer holding ``CHECKED_CHARS`` of text."""
        import pandas as pd

        taken: list[pd.DataFrame] = []
        rows = chars = 0
        with contextlib.closing(self.frames()) as frames:
            for frame in frames:
                taken.append(frame)
                rows, chars = rows + len(frame), chars + int(frame["text"].str.len().sum())
                if rows >= CHECKED_ROWS or chars >= CHECKED_CHARS:
                    break
        return pd.concat(taken).head(CHECKED_ROWS) if taken else pd.DataFrame({"row": [], "text": [], "label": []})


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
        mapping, reader = parquet.open_parquet(file, columns, keep_whitespace)
        return _checked(ImportFile(Format.PARQUET, mapping, reader), columns)
    encoding = text_encoding(file)
    skipped, lines = _first_lines(file, encoding)
    if not lines:
        raise InvalidArgument("the file is empty")
    stripped = lines[0].lstrip()
    if auto and stripped.startswith("["):
        raise InvalidArgument("the file is a JSON array; write one JSON object per line (JSONL) instead")
    if fmt is Format.JSONL or (auto and stripped.startswith("{")):
        mapping = _jsonl_columns(file, encoding, columns)
        reader = functools.partial(_jsonl_reader, file, encoding, mapping, keep_whitespace)
        return _checked(ImportFile(Format.JSONL, mapping, reader), columns)
    csv_file = _CsvFile(file, encoding, delimiter("".join(lines[:SNIFFED_LINES])), skipped)
    first = csv_file.first_record()
    if auto:  # A first row naming a known column (or one a flag names) is a header (ATIS-style files start with data).
        header = columns.given or any(_known_name(name, columns) for name in first)
        fmt = Format.CSV_HEADER if header else Format.CSV_LABEL_TEXT
    if fmt is Format.CSV_HEADER:
        mapping = resolve_columns([name for name in first if name], columns, "line 1 (header)")
        index = {field: first.index(name) for field, name in mapping.items() if field != IGNORED}
        unnamed = [i for i, name in enumerate(first) if not name]
    else:
        if columns.given:
            raise InvalidArgument(
                "--text-column, --label-column and --id-column name header columns; "
                "a headerless label,text file has none (add a header line)"
            )
        if len(first) != 2:
            raise InvalidArgument(
                f"row 1 (line {csv_file.first_line}): expected 2 fields 'label,text', got {len(first)} "
                "(quote texts that contain commas)"
            )
        mapping, index, unnamed = {"label": "column 1", "text": "column 2"}, {"label": 0, "text": 1}, []
    reader = functools.partial(csv_file.reader, fmt is Format.CSV_HEADER, index, unnamed, keep_whitespace)
    return _checked(ImportFile(fmt, mapping, reader), columns, auto)


def _checked(opened: ImportFile, columns: Columns, auto: bool = False) -> ImportFile:
    """``opened``, once its first rows are read and show none of the misreadings refused here."""
    first_rows = opened.first_rows()
    labels, texts = first_rows["label"].tolist(), first_rows["text"].tolist()
    if auto and opened.format is Format.CSV_LABEL_TEXT:
        _refuse_header_read_as_data(labels, texts)
    if not texts:
        raise InvalidArgument("the file has no data rows")
    if not (columns.text or columns.label):
        _refuse_swapped(labels, texts, opened.columns)
    return opened


def _first_lines(file: IO[bytes], encoding: str) -> tuple[int, list[str]]:
    """The lines at the start of a text file (at most ``SNIFFED_BYTES``, a line cut there left
    out unless it is the first) from the first one holding more than whitespace, and how many
    lines come before it."""
    file.seek(0)
    head = file.read(SNIFFED_BYTES)
    lines = io.StringIO(head.decode(encoding, "ignore"), newline="").readlines()
    if len(head) == SNIFFED_BYTES and len(lines) > 1:
        lines.pop()
    skipped = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    return skipped, lines[skipped:]


_WORDLIKE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")


def _refuse_header_read_as_data(labels: list[str | None], texts: list[str]) -> None:
    """A headerless file whose first row is two lone names used nowhere else (in the rows given),
    while the other classes repeat and the other texts have several words: a header nobody named."""
    if len(texts) < 2:
        return
    label, text = labels[0] or "", texts[0]
    if not (_WORDLIKE.match(label) and _WORDLIKE.match(text)):
        return
    if label in labels[1:] or text in texts[1:]:
        return
    if not any(len(t.split()) > 1 for t in texts[1:]):
        return  # texts of one word each: the first row reads like the others
    if len(set(labels[1:])) == len(labels) - 1:
        return  # every class has one example: a lone first class is no sign of a header
    raise InvalidArgument(
        f"line 1: the first row ({label!r}, {text!r}) looks like a header, but the file would be read as "
        f"headerless label,text data (the row would become a sample of a class {label!r}); if it is a header, "
        f"{_flags_hint()}, e.g. --text-column {text} --label-column {label}; if it is data, "
        "pass --format csv"
    )


def _mean_words(values: list[str]) -> float:
    return sum(len(v.split()) for v in values) / max(len(values), 1)


def _refuse_swapped(all_labels: list[str | None], texts: list[str], mapping: dict[str, str]) -> None:
    """Labels that read like texts (long, multi-word, nearly all distinct) next to texts that read
    like labels (short, few distinct): the columns are the wrong way round."""
    labels = [label for label in all_labels if label is not None]
    if len(labels) < 4 or len(labels) < len(texts) // 2:
        return
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


# ------------------------------------------------------------------ CSV and TSV, by pandas


@dataclasses.dataclass(frozen=True)
class _CsvFile:
    """A CSV file to read with pandas: its encoding, its separator, the blank lines before its
    first record."""

    file: IO[bytes]
    encoding: str
    separator: str
    skipped: int

    @property
    def first_line(self) -> int:
        return self.skipped + 1

    def _records(self, width: int | None = None) -> Any:
        """pandas' reader of the file's records, every field a string (blank lines kept, to count them)."""
        import pandas as pd

        self.file.seek(0)
        return pd.read_csv(
            self.file,
            sep=self.separator,
            encoding=self.encoding,
            header=None,
            names=range(width) if width else None,
            index_col=False,
            dtype=object,
            na_filter=False,
            skip_blank_lines=False,
            skiprows=self.skipped,
            iterator=True,
            engine="c",
        )

    def first_record(self) -> list[str]:
        """The first record's fields, stripped (a header's names)."""
        import pandas as pd

        try:
            with self._records() as records:
                return [value.strip() for value in records.get_chunk(1).iloc[0]]
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InvalidArgument(f"row 1 (line {self.first_line}): malformed CSV: {exc}") from None

    @contextlib.contextmanager
    def reader(self, header: bool, index: dict[str, int], unnamed: list[int], keep_whitespace: bool) -> Iterator[Take]:
        """``take`` giving the fields of ``index`` (field -> position) of the rows that are not
        blank (every field whitespace), after the header line when there is one, checked."""
        import pandas as pd

        at = {"record": 0, "row": 0, "line": self.first_line}  # where the next record starts

        def rows_of(n: int) -> pd.DataFrame | None:
            """The next ``n`` records' rows that are not blank, with the ``row`` and ``line`` of each."""
            try:
                records = reader.get_chunk(n)
            except StopIteration:
                return None
            except pd.errors.ParserError as exc:
                raise self._malformed(exc, at, len(index) if not header else 0) from None
            lines = records.apply(lambda column: column.str.count(_LINE_END)).sum(axis=1) + 1  # [records]
            starts = lines.cumsum() - lines + at["line"]
            rows = records[~records.apply(lambda column: column.str.strip() == "").all(axis=1)]
            rows = rows.assign(row=range(at["row"], at["row"] + len(rows)), line=starts[rows.index])
            at.update(record=at["record"] + len(records), row=at["row"] + len(rows), line=at["line"] + int(lines.sum()))
            return rows

        def take(n: int) -> pd.DataFrame | None:
            if (rows := rows_of(n)) is None:
                return None
            problems = Problems(rows)
            for position in unnamed:
                message = f"a value in unnamed column {position + 1}; name it in the header line or remove it"
                problems.add(rows[position].str.strip() != "", message)
            fields = rows[["row", "line"]].assign(
                **{field: rows[position].map(spreadsheet.from_cell) for field, position in index.items()}
            )
            if not header:  # pandas reads a missing last field as empty
                problems.add(fields["label"].str.strip() == "", "empty label")
                problems.add(
                    fields["text"] == "",
                    lambda i: (
                        "expected 2 fields 'label,text', got an empty text or none (quote texts that contain commas)"
                    ),
                )
            return checked(fields, problems, keep_whitespace)

        with self._records(None if header else 2) as reader:
            if header:
                rows_of(1)
                at["row"] = 0
            yield take

    def _malformed(self, exc: Exception, at: dict[str, int], headerless: int) -> InvalidArgument:
        """The refusal of a record pandas cannot read, named by its row and line as if the records
        between the last chunk read and it were rows of one line each."""
        message = str(exc).removeprefix("Error tokenizing data. C error: ").strip()
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)|starting at row (\d+)", message)
        if found is None:
            return InvalidArgument(f"malformed CSV: {message}")
        after = (int(found[2]) - 1 if found[2] else int(found[4])) - self.skipped - at["record"]
        where = f"row {at['row'] + after + 1} (line {at['line'] + after})"
        if found[1] and headerless:
            return InvalidArgument(
                f"{where}: expected 2 fields 'label,text', got {found[3]} (quote texts that contain commas)"
            )
        if found[1]:
            return InvalidArgument(
                f"{where}: expected {found[1]} fields, got {found[3]} (quote texts that contain the separator)"
            )
        return InvalidArgument(f"{where}: malformed CSV: {message}")


# ------------------------------------------------------------------ JSON lines, by json


def _jsonl_objects(file: IO[bytes], encoding: str) -> Generator[tuple[int, str, dict]]:
    """``(line, where, object)`` for each line that is not blank; InvalidArgument for one that is
    not a JSON object. The file is read as text from its start and stays open after."""
    file.seek(0)
    text = io.TextIOWrapper(file, encoding=encoding, newline="")
    try:
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
            yield line_number, where, obj
    finally:
        text.detach()


def _jsonl_columns(file: IO[bytes], encoding: str, columns: Columns) -> dict[str, str]:
    """The key read for each field, from the keys of every line (a pass over the whole file)."""
    keys: dict[str, None] = {}
    for _, _, obj in _jsonl_objects(file, encoding):
        keys.update(dict.fromkeys(obj))
    return resolve_columns(list(keys), columns, "JSON keys")


@contextlib.contextmanager
def _jsonl_reader(file: IO[bytes], encoding: str, mapping: dict[str, str], keep_whitespace: bool) -> Iterator[Take]:
    import pandas as pd

    fields = {field: key for field, key in mapping.items() if field != IGNORED}
    objects = _jsonl_objects(file, encoding)
    count = 0

    def take(n: int) -> pd.DataFrame | None:
        nonlocal count
        taken = list(itertools.islice(objects, n))
        for _, where, obj in taken:
            if fields["text"] not in obj:
                raise InvalidArgument(f"{where}: no {fields['text']!r} field")
        frame = pd.DataFrame({"row": range(count, count + len(taken)), "line": [line for line, _, _ in taken]})
        for field, key in fields.items():
            frame[field] = pd.Series([obj.get(key) for _, _, obj in taken], dtype=object)
        count += len(taken)
        return checked(frame, Problems(frame), keep_whitespace) if taken else None

    with contextlib.closing(objects):
        yield take
