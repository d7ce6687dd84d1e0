"""``lesslabels import FILE`` and ``lesslabels export``: move data in and out of the pool."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import pathlib
import sys

from lesslabels.cli.common import tls_of
from lesslabels.cli.terminal import write_data
from lesslabels.client import ImportSummary, LessLabelsError, PoolClient
from lesslabels.client.pool import FORMATS
from lesslabels.contract.vocabulary import SPLITS
from lesslabels.common import spreadsheet
from lesslabels.common.config import add_client_tls_flags, add_flag

#: Columns of the export that hold integers (the rest are text).
_INTEGER_COLUMNS = ("sample_id",)


#: Statuses after which an import may or may not have been stored (the call ended without its answer).
_OUTCOME_UNKNOWN = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")


def import_request_id(path: pathlib.Path, dataset: str, options: dict[str, object]) -> str:
    """The import's request id: the same for the same file (its bytes), dataset and ``options`` (what
    the rows are stored as), so that running the same command again after a failed or cut-off import
    is recognised by the pool, which stores the rows at most once."""
    with open(path, "rb") as f:
        content = hashlib.file_digest(f, "sha256").hexdigest()
    key = json.dumps({"dataset": dataset, "content_sha256": content, **options}, sort_keys=True)
    return "cli-import-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def format_summary(summary: ImportSummary, path: pathlib.Path) -> str:
    if summary.replayed:
        lines = [
            f"already imported: {path} went into dataset {summary.dataset!r} before, with the same options "
            "(the pool recognised this import); nothing was stored again",
            f"the first import stored {summary.imported} rows ({summary.format})",
        ]
    else:
        verb = "would import (--check: nothing stored)" if summary.checked_only else "imported"
        lines = [f"{verb} {summary.imported} rows from {path} into dataset {summary.dataset!r} ({summary.format})"]
    read = {field: column for field, column in summary.columns.items() if field != "ignored"}
    if read:
        order = ("text", "label", "id", "split")
        fields = sorted(read, key=lambda f: (order.index(f) if f in order else len(order), f))
        used = ", ".join(f"{field}={read[field]!r}" for field in fields)
        lines.append(f"columns: {used}")
    if summary.columns.get("ignored"):
        lines.append(f"left out (not stored): {summary.columns['ignored']}")
    if summary.by_split:
        lines.append("per split: " + ", ".join(f"{split} {n}" for split, n in sorted(summary.by_split.items())))
    lines.append(f"per label ({len([k for k in summary.by_label if k])} labels):")
    width = max((len(k) for k in summary.by_label), default=5)
    for label, count in sorted(summary.by_label.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {label or '(no label)':<{width}}  {count:>7}")
    if summary.duplicate_rows:
        lines.append(f"{summary.duplicate_rows} rows repeat a text seen before (stored, not dropped); first ones:")
        for dup in summary.duplicates[:5]:
            where = "already in the dataset" if dup.first_row < 0 else f"first at row {dup.first_row + 1}"
            lines.append(f"  rows {', '.join(str(r + 1) for r in dup.rows[:5])}: {dup.text[:60]!r} ({where})")
    return "\n".join(lines)


def _reason(exc: LessLabelsError) -> str:
    status = getattr(exc, "status", None)
    return f"{status.name}: {exc.details}" if status is not None else str(exc)


def _pool_flags(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "--pool-address", default="127.0.0.1:50051", help="pool service HOST:PORT")
    add_flag(parser, "--token", default="", help="bearer token of the services")
    add_client_tls_flags(parser)


def import_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lesslabels import", description="Import a CSV/TSV, JSONL or Parquet file into a pool dataset."
    )
    parser.add_argument(
        "file",
        type=pathlib.Path,
        help="headerless label,text CSV; CSV or TSV with a header (text, label, split, id, or columns named by the "
        "flags); JSONL; or Parquet (a Hugging Face ClassLabel column is read as its names)",
    )
    parser.add_argument("--dataset", required=True, help="dataset name (created when missing unless --no-create)")
    parser.add_argument("--split", choices=sorted(SPLITS), default="train", help="split of rows that do not name one")
    parser.add_argument("--format", choices=sorted(FORMATS), default="auto")
    parser.add_argument("--no-create", action="store_true", help="fail if the dataset does not exist")
    parser.add_argument("--text-column", default="", help="header column (or JSON key) of the texts")
    parser.add_argument("--label-column", default="", help="header column (or JSON key) of the labels")
    parser.add_argument("--id-column", default="", help="header column (or JSON key) of your own ids (kept, exported)")
    parser.add_argument(
        "--allow-similar-labels",
        action="store_true",
        help="accept label names that look like one class spelled differently (e.g. weather / wether)",
    )
    parser.add_argument(
        "--ignore-extra",
        action="store_true",
        help="leave out columns (JSON keys) that no field reads, e.g. metadata, instead of refusing the file",
    )
    parser.add_argument(
        "--check", action="store_true", help="dry run: check the file and print what would be imported; store nothing"
    )
    parser.add_argument(
        "--request-id",
        default="",
        help="the import's idempotency key (at most 128 characters) [derived from the file's bytes, the dataset "
        "and the options: the same command again stores nothing twice]",
    )
    _pool_flags(parser)
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"lesslabels import: {args.file}: no such file", file=sys.stderr)
        return 2
    # What decides how the rows are stored (not --no-create, which only refuses a missing dataset).
    options: dict[str, object] = dict(
        split=args.split,
        format=args.format,
        text_column=args.text_column,
        label_column=args.label_column,
        id_column=args.id_column,
        allow_similar_labels=args.allow_similar_labels,
        ignore_extra=args.ignore_extra,
    )
    request_id = "" if args.check else args.request_id or import_request_id(args.file, args.dataset, options)
    with PoolClient(args.pool_address, token=args.token, tls=tls_of(args)) as pool:
        try:
            summary = pool.import_file(
                args.file,
                args.dataset,
                create=not args.no_create,
                check=args.check,
                request_id=request_id,
                **options,
            )
        except LessLabelsError as exc:
            print(f"lesslabels import: {args.file}: {_reason(exc)}", file=sys.stderr)
            status = getattr(exc, "status", None)
            if request_id and status is not None and status.name in _OUTCOME_UNKNOWN:
                print(
                    "lesslabels import: the import may or may not have been stored; run the same command again: "
                    "the pool recognises it and stores the rows at most once",
                    file=sys.stderr,
                )
            return 1
    print(format_summary(summary, args.file))
    return 0


def export_to_parquet(data: bytes) -> bytes:
    """The pool's CSV export as Parquet: the same columns, each cell as it was stored (the formula
    quote ``spreadsheet`` adds for spreadsheets taken off again), ``sample_id`` as int64."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("Parquet needs pyarrow, which is not installed: pip install 'lesslabels[parquet]'") from None
    header, *rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    columns: dict[str, list] = {name: [] for name in header}
    for row in rows:
        for name, cell in zip(header, row, strict=True):
            columns[name].append(spreadsheet.from_cell(cell))
    arrays = {
        name: pa.array([int(v) if v else None for v in values], pa.int64())
        if name in _INTEGER_COLUMNS
        else pa.array([v or None for v in values] if name not in ("label", "text") else values, pa.string())
        for name, values in columns.items()
    }
    out = io.BytesIO()
    pq.write_table(pa.table(arrays), out)
    return out.getvalue()


def export_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lesslabels export",
        description="Export a dataset's labelled set as CSV (label,text,[id,]sample_id,annotator,labelled_at,"
        "label_source) or Parquet (the same columns).",
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--run", type=int, default=0, help="labels acquired by this run (default: the dataset's own labels)"
    )
    parser.add_argument("--output", "-o", type=pathlib.Path, help="file to write (default: stdout)")
    parser.add_argument("--format", choices=["auto", "csv", "parquet"], default="auto", help="[from the suffix: csv]")
    _pool_flags(parser)
    args = parser.parse_args(argv)
    parquet = args.format == "parquet" or (
        args.format == "auto" and args.output is not None and args.output.suffix.lower() == ".parquet"
    )
    if parquet and args.output is None:
        print("lesslabels export: Parquet is written to a file: pass --output FILE", file=sys.stderr)
        return 2
    with PoolClient(args.pool_address, token=args.token, tls=tls_of(args)) as pool:
        try:
            data = pool.export_labels(args.dataset, run_id=args.run, timeout=300)
        except LessLabelsError as exc:
            print(f"lesslabels export: {_reason(exc)}", file=sys.stderr)
            return 1
    if parquet:
        try:
            data = export_to_parquet(data)
        except ImportError as exc:
            print(f"lesslabels export: {exc}", file=sys.stderr)
            return 1
    if args.output:
        args.output.write_bytes(data)
    else:
        write_data(data)
    return 0
