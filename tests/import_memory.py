"""Peak memory of one large import through the pool's servicer, measured in a process of its own.

``python -m tests.import_memory DATABASE_URL MEGABYTES [csv|parquet]`` imports a generated file of
about MEGABYTES MB through ``PoolServicer.ImportSamples`` in 1 MiB messages, made as they are sent
(the sender holds one), after a small import that loads every code path. ``csv`` (the default): a
headerless ``label,text`` CSV, texts of about 1 kB, one row in 100 repeating an earlier text.
``parquet``: a ``text,label`` Parquet file of the same rows written by another process in one row
group (pandas' default for a file this size: the most a reader may have to decode at once), read
from disk as it is sent. It prints one JSON object: the rows imported, the file's size and how much
the import raised the process's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import json
import pathlib
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from lesslabels.pool.servicer import PoolServicer
from lesslabels.pool.store import PoolStore
from lesslabels.v1 import pool_pb2

MiB = 1024 * 1024
LABELS = ("flight", "airfare", "ground_service", "airline", "abbreviation")
ROW_TEXT = "show me the flights from boston to denver on monday morning please " * 15


def rows_csv(megabytes: int) -> Iterator[bytes]:
    """The file in pieces of about 1 MiB, ``label,text`` lines of about 1 kB each."""
    total, row, piece = 0, 0, bytearray()
    while total < megabytes * 1_000_000:
        repeated = row - 50 if row % 100 == 99 else row
        line = f"{LABELS[row % len(LABELS)]},{repeated} {ROW_TEXT}\n".encode()
        piece += line
        total += len(line)
        row += 1
        if len(piece) >= MiB:
            yield bytes(piece)
            piece = bytearray()
    if piece:
        yield bytes(piece)


#: Writes the CSV of ``rows_csv(MEGABYTES)`` (argv[2]) as Parquet (argv[1]), in a process of its own.
_TO_PARQUET = """
import io, sys
import pyarrow.csv, pyarrow.parquet
from tests.import_memory import rows_csv
data = b"label,text\\n" + b"".join(rows_csv(int(sys.argv[2])))
table = pyarrow.csv.read_csv(io.BytesIO(data)).select(["text", "label"])
pyarrow.parquet.write_table(table, sys.argv[1], row_group_size=len(table))
"""


def parquet_file(megabytes: int, folder: pathlib.Path) -> pathlib.Path:
    path = folder / f"rows-{megabytes}.parquet"
    subprocess.run([sys.executable, "-c", _TO_PARQUET, str(path), str(megabytes)], check=True, timeout=600)
    return path


def file_pieces(path: pathlib.Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from iter(lambda: f.read(MiB), b"")


class _Context:
    """What the servicer asks of a gRPC context here: a callback when the call ends (never)."""

    def add_callback(self, callback) -> bool:
        return True


def messages(dataset: str, pieces: Iterator[bytes]) -> Iterator[pool_pb2.ImportSamplesRequest]:
    yield pool_pb2.ImportSamplesRequest(header=pool_pb2.ImportHeader(dataset=dataset, create_dataset=True))
    for piece in pieces:
        yield pool_pb2.ImportSamplesRequest(data=piece)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main(argv: list[str]) -> int:
    url, megabytes = argv[0], int(argv[1])
    fmt = argv[2] if len(argv) > 2 else "csv"
    servicer = PoolServicer(PoolStore(url))
    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "parquet":
            warm_up, large = parquet_file(1, pathlib.Path(tmp)), parquet_file(megabytes, pathlib.Path(tmp))
            servicer.ImportSamples(messages("warm-up", file_pieces(warm_up)), _Context())
            size = large.stat().st_size
            pieces = file_pieces(large)
        else:
            servicer.ImportSamples(messages("warm-up", rows_csv(1)), _Context())
            size = sum(len(piece) for piece in rows_csv(megabytes))
            pieces = rows_csv(megabytes)
        before = peak_rss_mib()
        summary = servicer.ImportSamples(messages("large", pieces), _Context())
        growth = peak_rss_mib() - before
    print(json.dumps({"rows": summary.imported, "bytes": size, "peak_rss_growth_mib": round(growth, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
