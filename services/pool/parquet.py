"""Read a Parquet file's rows for import, a batch at a time, with pyarrow, as DataFrames.

The columns are named as in a CSV header (``importers.resolve_columns``: the same flags, known names
and refusals); only the columns read are decoded. A label column of integers is read as class
indices through the names of the file's ``ClassLabel`` (the Hugging Face metadata every
``datasets`` Parquet file carries; -1 is no label). The index columns pandas adds
(``__index_level_0__``) are not data and are left out. pyarrow is imported when a Parquet file
comes, so a pool without it serves every other format.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from lesslabels.common.errors import FailedPrecondition, InvalidArgument
from lesslabels.pool import importers

#: The first (and last) bytes of every Parquet file.
MAGIC = b"PAR1"
#: Rows decoded at a time.
BATCH_ROWS = 1000
#: The names pandas gives an unnamed index it stores as a column.
_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")


def is_parquet(file: IO[bytes]) -> bool:
    file.seek(0)
    return file.read(len(MAGIC)) == MAGIC


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise FailedPrecondition(
            "this pool cannot read Parquet files: pyarrow is not installed beside it "
            "(pip install 'lesslabels[parquet]'); import CSV or JSON lines instead"
        ) from None
    return pyarrow


@contextlib.contextmanager
def _opened(file: IO[bytes]) -> Iterator[Any]:
    """``file`` as a ``pyarrow.parquet.ParquetFile`` (its footer read); InvalidArgument for a file
    pyarrow cannot read."""
    pa = _pyarrow()
    file.seek(0)
    if not is_parquet(file):
        raise InvalidArgument("not a Parquet file (it does not start with PAR1); pass the format it has")
    file.seek(0)
    try:
        parquet_file = pa.parquet.ParquetFile(file)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidArgument(f"not a readable Parquet file: {exc}") from None
    try:
        yield parquet_file
    finally:
        parquet_file.close()


def open_parquet(
    file: IO[bytes], columns: importers.Columns, keep_whitespace: bool
) -> tuple[dict[str, str], Callable[[], contextlib.AbstractContextManager[importers.Take]]]:
    """The column read for each field and the reader of ``file``'s rows, from its start."""
    with _opened(file) as parquet_file:
        schema = parquet_file.schema_arrow
        names = [name for name in schema.names if not _PANDAS_INDEX.match(name)]
        mapping = importers.resolve_columns(names, columns, "Parquet columns")
        class_names = _class_names(schema.metadata or {}, mapping.get("label", ""))
    fields = {field: name for field, name in mapping.items() if field != importers.IGNORED}
    return mapping, functools.partial(_reader, file, fields, class_names, keep_whitespace)


def _class_names(metadata: dict[bytes, bytes], label_column: str) -> list[str] | None:
    """The names of the label column's ``ClassLabel`` in the file's Hugging Face metadata; None
    when it has none."""
    try:
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
        feature = features[label_column]
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(feature, dict) or feature.get("_type") != "ClassLabel":
        return None
    names = feature.get("names")
    return [str(n) for n in names] if isinstance(names, list) else None


def _class_labels(labels: Any, class_names: list[str] | None, problems: importers.Problems) -> Any:
    """``labels`` with the integers read as class indices of ``class_names`` (-1: no label)."""
    indices = labels.map(lambda v: isinstance(v, int) and not isinstance(v, bool)).astype(bool)
    if class_names is None:
        problems.add(
            indices,
            lambda i: (
                f"label must be a string, got the integer {labels.iloc[i]} and the file names no classes "
                "(no ClassLabel in its Hugging Face metadata); write the label names, not their indices"
            ),
        )
        return labels
    known = indices & labels.where(indices, 0).astype(int).between(-1, len(class_names) - 1)
    problems.add(
        indices & ~known,
        lambda i: f"label {labels.iloc[i]} is not a class index of the file's ClassLabel ({len(class_names)} names)",
    )
    names = [*class_names, None]  # -1: datasets' ClassLabel for "no label"
    return [names[v] if index else v for v, index in zip(labels.tolist(), known.tolist(), strict=True)]


@contextlib.contextmanager
def _reader(
    file: IO[bytes], fields: dict[str, str], class_names: list[str] | None, keep_whitespace: bool
) -> Iterator[importers.Take]:
    import pandas as pd

    pa = _pyarrow()
    count = 0
    with _opened(file) as parquet_file:
        batches = parquet_file.iter_batches(batch_size=BATCH_ROWS, columns=list(dict.fromkeys(fields.values())))

        def take(_: int) -> Any:
            nonlocal count
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                raise InvalidArgument(f"row {count + 1}: the Parquet file cannot be read: {exc}") from None
            if batch is None:
                return None
            frame = pd.DataFrame({"row": range(count, count + batch.num_rows)})
            for field, name in fields.items():
                frame[field] = pd.Series(batch.column(name).to_pylist(), dtype=object)
            count += batch.num_rows
            problems = importers.Problems(frame)
            if "label" in frame:
                frame["label"] = pd.Series(_class_labels(frame["label"], class_names, problems), dtype=object)
            return importers.checked(frame, problems, keep_whitespace)

        yield take
