"""Imports read as a stream (issues 14 and 15): every row stored or none, however late in the file a
refusal comes; the file read again for each pass. (Their memory: test_pool_import_memory.py.)"""

from __future__ import annotations

import collections
import io
import tempfile

import pandas as pd
import pytest

from lesslabels.common.errors import InvalidArgument
from lesslabels.pool import importers
from lesslabels.pool.store import PoolStore
from tests.helpers import BOTH_DATABASES

ROWS = 3 * importers.CHUNK_ROWS + 17  # rows spread over several inserted chunks
LABELS = ("flight", "airfare", "ground_service")


def _csv(rows: int, *, ids: bool = False, last: str = "") -> bytes:
    """A ``text,label`` CSV (``id,text,label`` with ids) of ``rows`` rows, ``last`` replacing the last line."""
    lines = ["id,text,label" if ids else "text,label"]
    for i in range(rows):
        label = LABELS[i % 3]
        lines.append(f"u{i},text number {i},{label}" if ids else f"text number {i},{label}")
    if last:
        lines[-1] = last
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def store(database_url):
    store = PoolStore(database_url)
    store.create_dataset("d")
    store.import_samples("d", b"text,label\nstored before,flight\n")
    yield store
    store.close()


def _stored(store: PoolStore) -> int:
    return sum(store.get_dataset("d").counts.values())


@BOTH_DATABASES
@pytest.mark.parametrize(
    "data, words",
    [
        (_csv(ROWS, last="   ,flight"), f"row {ROWS} (line {ROWS + 1}): empty text"),
        (_csv(ROWS, last="a text,Flight"), f"row {ROWS}: label 'Flight' is a near-duplicate of 'flight'"),
        (_csv(ROWS, last="a text,flights"), "'flights' and 'flight'"),
        (_csv(ROWS, ids=True, last="u7,a text,flight"), f"row {ROWS}: id 'u7' repeats the id of row 8"),
    ],
    ids=["bad-row", "near-duplicate-label", "similar-label", "repeated-id"],
)
def test_a_refusal_at_the_end_of_a_large_file_stores_nothing(store, data, words):
    with pytest.raises(InvalidArgument) as refused:
        store.import_samples("d", data)
    assert words in str(refused.value)
    assert _stored(store) == 1 and store.get_dataset("d").labels == ["flight"]
    with pytest.raises(InvalidArgument):
        store.import_samples("new", data, create_dataset=True)
    assert [d.name for d in store.list_datasets()] == ["d"]


@BOTH_DATABASES
def test_an_id_already_stored_is_refused_after_the_rows_before_it(store):
    store.import_samples("d", b"id,text\nkept,one\n")
    data = _csv(ROWS, ids=True, last="kept,a text,flight")
    with pytest.raises(InvalidArgument, match=f"row {ROWS}: id 'kept' is already in the dataset"):
        store.import_samples("d", data)
    assert _stored(store) == 2


@BOTH_DATABASES
def test_check_only_of_a_large_file_reports_everything_and_stores_nothing(store):
    data = _csv(ROWS, last="stored before,flight") + b"text number 5,airfare\n"
    result = store.import_samples("d", data, check_only=True)
    assert result.checked_only and result.imported == ROWS + 1
    labels = collections.Counter(LABELS[i % 3] for i in range(ROWS - 1)) + collections.Counter(["flight", "airfare"])
    assert result.by_label == dict(labels)
    assert result.by_split == {"train": ROWS + 1}
    assert [(d.text, d.first_row, d.rows) for d in result.duplicates] == [
        ("text number 5", 5, [ROWS]),
        ("stored before", -1, [ROWS - 1]),
    ]
    assert _stored(store) == 1 and store.get_dataset("d").labels == ["flight"]
    stored = store.import_samples("d", data)
    assert (stored.imported, stored.duplicates) == (result.imported, result.duplicates)
    assert _stored(store) == ROWS + 2


def _spooled(data: bytes):
    file = tempfile.SpooledTemporaryFile(max_size=1024)
    file.write(data)
    return file


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_is_read_again_for_each_pass_and_left_open(fmt):
    if fmt == "csv":
        data = b"\xef\xbb\xbftext,label\r\n" + b"".join(b"text %d,greet\r\n" % i for i in range(2500))
    else:
        data = b"".join(b'{"text": "text %d", "label": "greet"}\n' % i for i in range(2500))
    with _spooled(data) as file:
        opened = importers.open_import(file)
        first, again = pd.concat(opened.frames()), pd.concat(opened.frames())
        del opened
        assert not file.closed  # the caller's file stays the caller's
    assert first.equals(again) and len(first) == 2500
    assert (first["text"].iloc[0], first["row"].iloc[-1], first["label"].iloc[-1]) == ("text 0", 2499, "greet")


def test_a_utf8_error_names_its_line_however_far_into_the_file():
    # A two-byte character split by the end of the first 1 MiB block is fine; a lone byte later is not.
    prefix = b"greet," + b"x" * ((1 << 20) - 7) + "é".encode() + b"\n"
    data = prefix + b"greet,fine\n" * 3 + b"bye,caf\xe9\n"
    with pytest.raises(InvalidArgument, match=rf"line 5: not valid UTF-8 \(byte offset {len(data) - 2}\)"):
        importers.open_import(io.BytesIO(data))


def test_the_misreading_checks_look_at_the_first_rows():
    """A header read as data is judged on the first CHECKED_ROWS rows: a lone first row there is
    refused even if its class turns up later."""
    rows = [f"weather,will it rain on day {i}" for i in range(importers.CHECKED_ROWS)]
    with pytest.raises(InvalidArgument, match="looks like a header"):
        importers.open_import(("kind,phrase\n" + "\n".join(rows) + "\nkind,phrase\n").encode())


# -- an import is told the truth: stopped calls store nothing, retries store once (issue 25 F2) ----


def test_a_retried_import_with_its_request_id_is_stored_once(store):
    import hashlib

    from lesslabels.common.errors import AlreadyExists
    from lesslabels.pool.imports import ImportRequest

    data = _csv(ROWS)
    request = ImportRequest("retry-1", hashlib.sha256(data).hexdigest())
    first = store.import_samples("d", data, request=request)
    again = store.import_samples("d", data, request=request)
    assert first.imported == again.imported == ROWS and not first.replayed and again.replayed
    assert again.by_label == first.by_label and again.duplicates == first.duplicates
    assert _stored(store) == 1 + ROWS  # not 1 + 2 * ROWS
    other = _csv(5)
    with pytest.raises(AlreadyExists, match="other bytes"):
        store.import_samples("d", other, request=ImportRequest("retry-1", hashlib.sha256(other).hexdigest()))
    with pytest.raises(InvalidArgument, match="at most 128"):
        store.import_samples("d", other, request=ImportRequest("x" * 129, "0"))
    assert _stored(store) == 1 + ROWS
    # A deleted dataset takes its import records with it: the same request into a new "d" is new.
    store.delete_dataset("d")
    store.create_dataset("d")
    assert not store.import_samples("d", data, request=request).replayed and _stored(store) == ROWS


def test_an_import_whose_call_ended_stores_nothing(store):
    """The call of an import ends (the server stopping, the caller gone) while its rows are being
    stored: the transaction rolls back, at a batch or at the last moment before commit."""
    from lesslabels.common.errors import Cancelled
    from lesslabels.pool.imports import ImportRequest

    def stopping_after(calls: int):
        seen = []

        def stopped() -> bool:
            seen.append(1)
            return len(seen) > calls

        return ImportRequest("", "", stopped)

    for calls_before_stop in (1, 4, 5):  # during the rows (4 batches); after them; just before the commit
        with pytest.raises(Cancelled, match="nothing was stored"):
            store.import_samples("d", _csv(ROWS), request=stopping_after(calls_before_stop))
        with pytest.raises(Cancelled):
            store.import_samples("new", _csv(ROWS), create_dataset=True, request=stopping_after(calls_before_stop))
        assert _stored(store) == 1
        assert "new" not in [d.name for d in store.list_datasets()]


# -- read by pandas (issue 30, item 1): what its C parser reads differently is named or refused ----


@pytest.mark.parametrize(
    "data, words",
    [
        # A record pandas cannot read, past the first chunks: its row and line are still named.
        (b"greet,hello\n" * 1500 + b"bye,see,you\n", "row 1501 (line 1501): expected 2 fields 'label,text', got 3"),
        (b"text,label\n" + b"hello,greet\n" * 1500 + b"a,b,c\n", "row 1501 (line 1502): expected 2 fields, got 3"),
        # Lines count the line ends inside quoted texts and the blank lines.
        (b'label,text\ngreet,"two\nlines"\n\nbye,   \n', "row 2 (line 5): empty text"),
        # pandas reads NUL like any character (the csv module refused the line): no database stores it in a text.
        (b"greet,hel\x00lo\n", "row 1 (line 1): the text holds a NUL character"),
        (b'{"text": "a", "id": "x\\u0000"}\n', "row 1 (line 1): the id holds a NUL character"),
    ],
    ids=["late-extra-field-headerless", "late-extra-field-header", "multi-line-and-blank", "nul-text", "nul-id"],
)
def test_refusals_of_what_pandas_reads_name_the_row_and_line(store, data, words):
    with pytest.raises(InvalidArgument) as refused:
        store.import_samples("d", data)
    assert words in str(refused.value)
    assert _stored(store) == 1


def test_a_row_short_of_fields_reads_the_missing_ones_as_empty(store):
    """pandas fills a row's missing last fields with empty strings, as a spreadsheet leaves
    trailing empty cells out: in a file with a header they are empty values, not a refusal."""
    result = store.import_samples("d", b"text,label,split\nhello there,greet\nsee you,bye,test\n")
    assert (result.imported, result.by_split, result.by_label) == (2, {"train": 1, "test": 1}, {"greet": 1, "bye": 1})
