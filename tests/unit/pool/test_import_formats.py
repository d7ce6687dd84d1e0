"""Import formats beyond UTF-8 CSV and JSONL (issue 30): Parquet (pyarrow), CSV whose separator is
sniffed from its first lines (csv.Sniffer), UTF-16/UTF-32 text with a byte-order mark. Each through
a real pool server; every refusal names what is wrong and stores nothing."""

from __future__ import annotations

import io
import json
import sys

import grpc
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from lesslabels.common.errors import FailedPrecondition  # noqa: E402
from lesslabels.pool import importers  # noqa: E402
from lesslabels.pool.store import PoolStore  # noqa: E402
from lesslabels.v1 import pool_pb2  # noqa: E402
from tests.helpers import import_bytes  # noqa: E402

STORED = b"text,label\nstored before,greet\n"


def _parquet(columns: dict, *, metadata: dict | None = None, row_group_size: int | None = None) -> bytes:
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=row_group_size)
    return out.getvalue()


def _hf_metadata(names: list[str]) -> dict:
    """The schema metadata ``datasets`` writes for a ``text`` Value and a ``label`` ClassLabel."""
    features = {"text": {"dtype": "string", "_type": "Value"}, "label": {"names": names, "_type": "ClassLabel"}}
    return {b"huggingface": json.dumps({"info": {"features": features}}).encode()}


def _refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def _train_count(stub, dataset: str) -> int:
    return stub.GetDataset(pool_pb2.GetDatasetRequest(name=dataset), timeout=5).train_count


# ------------------------------------------------------------------ Parquet


def test_parquet_is_recognised_and_read_by_column_names(pool_address, stub):
    data = _parquet(
        {
            "id": ["a-1", "a-2", "a-3"],
            "sentence": ["hello there", "see you later", "what time is it"],
            "intent": ["greet", "bye", None],
            "split": ["train", "test", "train"],
        }
    )
    summary = import_bytes(pool_address, "p", data)
    assert summary.format == pool_pb2.IMPORT_FORMAT_PARQUET
    assert dict(summary.columns) == {"text": "sentence", "label": "intent", "id": "id", "split": "split"}
    assert dict(summary.by_label) == {"greet": 1, "bye": 1, "": 1}
    assert dict(summary.by_split) == {"train": 2, "test": 1}
    dataset = stub.GetDataset(pool_pb2.GetDatasetRequest(name="p"), timeout=5)
    assert (dataset.train_count, dataset.test_count, list(dataset.labels)) == (2, 1, ["greet", "bye"])


def test_parquet_column_flags_and_many_row_groups(pool_address):
    n = 2500  # three batches of rows, in row groups of 700
    data = _parquet(
        {"utterance_text": [f"text number {i}" for i in range(n)], "y": ["a" if i % 2 else "b" for i in range(n)]},
        row_group_size=700,
    )
    summary = import_bytes(
        pool_address, "p", data, fmt=pool_pb2.IMPORT_FORMAT_PARQUET, text_column="utterance_text", label_column="y"
    )
    assert summary.imported == n and dict(summary.by_label) == {"a": n // 2, "b": n - n // 2}


def test_a_hugging_face_class_label_column_is_read_as_its_names(pool_address, stub):
    """``datasets`` stores a ClassLabel as integers with its names in the schema metadata."""
    data = _parquet(
        {"text": ["book a flight", "what is the fare", "hello", "no label yet"], "label": [0, 1, 0, -1]},
        metadata=_hf_metadata(["flight", "airfare"]),
    )
    summary = import_bytes(pool_address, "hf", data)
    assert dict(summary.by_label) == {"flight": 2, "airfare": 1, "": 1}
    assert list(stub.GetDataset(pool_pb2.GetDatasetRequest(name="hf"), timeout=5).labels) == ["flight", "airfare"]


def test_the_files_datasets_writes_import(pool_address, tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    ds = datasets.Dataset.from_dict(
        {"text": ["awful film", "loved it", "great"], "label": [0, 1, 1]}, features=features
    )
    ds.to_parquet(tmp_path / "train.parquet")
    summary = import_bytes(pool_address, "hub", (tmp_path / "train.parquet").read_bytes())
    assert dict(summary.by_label) == {"neg": 1, "pos": 2}


def test_a_pandas_index_column_is_not_data(pool_address):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": ["hello there", "see you"], "label": ["greet", "bye"]}, index=[10, 20])
    out = io.BytesIO()
    frame.to_parquet(out)  # a non-default index is stored as the column __index_level_0__
    summary = import_bytes(pool_address, "pd", out.getvalue())
    assert dict(summary.columns) == {"text": "text", "label": "label"} and summary.imported == 2


PARQUET_REFUSALS = [
    (_parquet({"text": ["a b", "c d"], "label": [0, 1]}), "row 1: label must be a string, got the integer 0"),
    (
        _parquet({"text": ["a b", "c d"], "label": [0, 5]}, metadata=_hf_metadata(["x", "y"])),
        "row 2: label 5 is not a class index of the file's ClassLabel (2 names)",
    ),
    (_parquet({"text": ["a b", None], "label": ["x", "y"]}), "row 2: empty text (null)"),
    (_parquet({"text": ["a b", "   "], "label": ["x", "y"]}), "row 2: empty text"),
    (_parquet({"text": [1, 2], "label": ["x", "y"]}), "row 1: text must be a string, got int"),
    (_parquet({"text": ["a", "b"], "label": ["x", "y"], "source": ["w", "v"]}), "columns ['source'] are read as"),
    (_parquet({"phrase": ["a", "b"], "label": ["x", "y"]}), "no text column among 'phrase', 'label'"),
    (_parquet({"text": ["a", "b"], "label": ["x", "y"], "split": ["train", "holdout"]}), "unknown split 'holdout'"),
    (_parquet({"text": ["a b", "c d"], "label": ["x", "X"]}), "near-duplicate"),
    (_parquet({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())}), "no data rows"),
    (_parquet({"text": ["a b"], "label": ["x"]})[:-30], "not a readable Parquet file"),
    (b"PAR1 and then nothing a Parquet reader can read", "not a readable Parquet file"),
    (
        _parquet({"text": [f"text number {i}" for i in range(2500)] + [""], "label": ["x"] * 2501}),
        "row 2501: empty text",
    ),
]


@pytest.mark.parametrize(
    "data, words",
    PARQUET_REFUSALS,
    ids=[
        "int-labels-no-names",
        "class-index-out-of-range",
        "null-text",
        "blank-text",
        "int-texts",
        "unknown-column",
        "no-text-column",
        "unknown-split",
        "near-duplicate-labels",
        "no-rows",
        "truncated",
        "magic-only",
        "bad-last-row",
    ],
)
def test_bad_parquet_files_are_refused_naming_the_problem_and_store_nothing(pool_address, stub, data, words):
    import_bytes(pool_address, "p", STORED)
    err = _refused(lambda: import_bytes(pool_address, "p", data))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert words in err.details()
    assert _train_count(stub, "p") == 1


def test_parquet_asked_for_but_not_given_is_refused(pool_address, stub):
    err = _refused(lambda: import_bytes(pool_address, "n", STORED, fmt=pool_pb2.IMPORT_FORMAT_PARQUET))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a Parquet file" in err.details()
    assert _refused(lambda: _train_count(stub, "n")).code() == grpc.StatusCode.NOT_FOUND


def test_a_pool_without_pyarrow_says_how_to_read_parquet(tmp_path, monkeypatch):
    data = _parquet({"text": ["a b"], "label": ["x"]})
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    store = PoolStore(f"sqlite:///{tmp_path / 'pool.db'}")
    try:
        with pytest.raises(FailedPrecondition, match=r"pip install 'lesslabels\[parquet\]'"):
            store.import_samples("d", data, create_dataset=True)
        assert [d.name for d in store.list_datasets()] == []
        # Every other format still imports.
        assert store.import_samples("d", STORED, create_dataset=True).imported == 1
    finally:
        store.close()


# ------------------------------------------------------------------ CSV dialects


def test_the_separator_is_sniffed_from_the_first_lines(pool_address):
    # The first text holds a comma: the first line alone reads as comma-separated; the lines agree on ';'.
    summary = import_bytes(pool_address, "s", b"greet;hello, there\nbye;see you\nask;what, now\n")
    assert dict(summary.by_label) == {"greet": 1, "bye": 1, "ask": 1}
    summary = import_bytes(pool_address, "pipe", b"text|label\nhello, there|greet\nsee; you|bye\n")
    assert dict(summary.by_label) == {"greet": 1, "bye": 1}
    assert summary.format == pool_pb2.IMPORT_FORMAT_CSV_HEADER


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_text_with_a_byte_order_mark(pool_address, stub, encoding):
    """Excel's "Unicode text" is UTF-16 TSV with a byte-order mark."""
    text = "text\tlabel\r\ncafé au lait ☕\tdrink\r\nsee you\tbye\r\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = "\ufeff".encode("utf-16-be") + data
    summary = import_bytes(pool_address, "u", data)
    assert dict(summary.by_label) == {"drink": 1, "bye": 1}
    listed = stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="u"), timeout=10)
    assert [s.text for page in listed for s in page.samples] == ["café au lait ☕", "see you"]


def test_broken_utf16_is_refused_naming_the_byte(pool_address, stub):
    data = "text,label\nhello there,greet\n".encode("utf-16") + b"\x00\xdc"  # a lone low surrogate
    err = _refused(lambda: import_bytes(pool_address, "b", data))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"not valid UTF-16 (byte offset {len(data) - 2})" in err.details()
    assert _refused(lambda: _train_count(stub, "b")).code() == grpc.StatusCode.NOT_FOUND


def test_delimiter_falls_back_to_a_comma_for_one_column():
    assert importers.delimiter("text\nhello\nworld\n") == ","
    assert importers.delimiter("label\ttext\ngreet\thi, you, me\nbye\tsee, you\n") == "\t"
