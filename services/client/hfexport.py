"""A labelled set in the layout of Hugging Face ``datasets``: ``text`` and ``label`` columns, the label
an index into a names list (a ``ClassLabel``), and that names list beside the file; then where each
label came from: ``sample_id``, ``annotator``, ``labelled_at`` (RFC 3339, UTC) and ``label_source``.

Pure conversion, no ``datasets`` import: load the result with
``datasets.load_dataset("json", data_files=FILE, features=Features({"text": Value("string"),
"label": ClassLabel(names=NAMES), "sample_id": Value("int64"), "annotator": Value("string"),
"labelled_at": Value("string"), "label_source": Value("string")}))`` (``"csv"`` for the CSV file).
A Parquet file (pyarrow, ``lesslabels[parquet]``) carries those features in its own metadata, as
``datasets`` writes them: ``datasets.load_dataset("parquet", data_files=FILE)`` needs no ``features``,
and ``lesslabels import FILE`` reads its labels back by name.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence

from lesslabels.client.errors import FailedPrecondition, InvalidArgument
from lesslabels.client.types import Sample

FORMATS = ("jsonl", "csv", "parquet")
#: The columns of a row, in order.
COLUMNS = ("text", "label", "sample_id", "annotator", "labelled_at", "label_source")


def label_names(declared: Sequence[str], samples: Iterable[Sample]) -> list[str]:
    """The dataset's declared label set in its order, then any label found only in the samples, sorted."""
    names = list(declared)
    extra = sorted({s.label for s in samples if s.label} - set(names))
    return names + extra


def hf_rows(samples: Iterable[Sample], names: Sequence[str]) -> list[dict]:
    index = {name: i for i, name in enumerate(names)}
    rows = [
        {
            "text": s.text,
            "label": index[s.label],
            "sample_id": s.id,
            "annotator": s.annotator,
            "labelled_at": s.labelled_at,
            "label_source": s.label_source,
        }
        for s in samples
        if s.label
    ]
    if not rows:
        raise FailedPrecondition("no labelled texts to export")
    return rows


def to_jsonl(rows: Sequence[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def to_csv(rows: Sequence[dict]) -> str:
    out = io.StringIO()
    # Exact cells (no spreadsheet formula quote): this file is read by programs, not spreadsheets.
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def features(names: Sequence[str]) -> dict:
    """The columns' ``datasets.Features``, as ``datasets`` writes them into a Parquet file's metadata."""
    string = {"dtype": "string", "_type": "Value"}
    return {
        "text": string,
        "label": {"names": list(names), "_type": "ClassLabel"},
        "sample_id": {"dtype": "int64", "_type": "Value"},
        "annotator": string,
        "labelled_at": string,
        "label_source": string,
    }


def to_parquet(rows: Sequence[dict], names: Sequence[str]) -> bytes:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("Parquet needs pyarrow, which is not installed: pip install 'lesslabels[parquet]'") from None
    types = {"label": pa.int64(), "sample_id": pa.int64()}
    schema = pa.schema(
        [(name, types.get(name, pa.string())) for name in COLUMNS],
        metadata={"huggingface": json.dumps({"info": {"features": features(names)}})},
    )
    table = pa.Table.from_pylist(list(rows), schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def render(rows: Sequence[dict], fmt: str) -> str:
    """The rows as JSON lines or CSV text (``encode`` for every format, Parquet included)."""
    if fmt not in FORMATS or fmt == "parquet":
        raise InvalidArgument(f"format {fmt!r}: expected one of jsonl, csv")
    return to_jsonl(rows) if fmt == "jsonl" else to_csv(rows)


def encode(rows: Sequence[dict], fmt: str, names: Sequence[str]) -> bytes:
    """The file's bytes in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "parquet":
        return to_parquet(rows, names)
    return render(rows, fmt).encode("utf-8")


def names_document(names: Sequence[str]) -> str:
    """The names list file: ``{"label": {"names": [...]}}``, the ``ClassLabel`` of the ``label`` column."""
    return json.dumps({"label": {"names": list(names)}}, ensure_ascii=False, indent=1) + "\n"
