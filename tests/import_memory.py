"""Peak memory of one large import through the pool's servicer, measured in a process of its own.

``python -m tests.import_memory DATABASE_URL MEGABYTES`` imports a generated headerless
``label,text`` CSV of about MEGABYTES MB (texts of about 1 kB, one row in 100 repeating an earlier
text) through ``PoolServicer.ImportSamples`` in 1 MiB messages, made as they are sent (the sender
holds one), after a small import that loads every code path. It prints one JSON object: the rows
imported, the file's size and how much the import raised the process's peak resident memory
(``ru_maxrss``).
"""

from __future__ import annotations

import json
import resource
import sys
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


def messages(dataset: str, pieces: Iterator[bytes]) -> Iterator[pool_pb2.ImportSamplesRequest]:
    yield pool_pb2.ImportSamplesRequest(header=pool_pb2.ImportHeader(dataset=dataset, create_dataset=True))
    for piece in pieces:
        yield pool_pb2.ImportSamplesRequest(data=piece)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main(argv: list[str]) -> int:
    url, megabytes = argv[0], int(argv[1])
    servicer = PoolServicer(PoolStore(url))
    servicer.ImportSamples(messages("warm-up", rows_csv(1)), None)
    size = sum(len(piece) for piece in rows_csv(megabytes))
    before = peak_rss_mib()
    summary = servicer.ImportSamples(messages("large", rows_csv(megabytes)), None)
    growth = peak_rss_mib() - before
    print(json.dumps({"rows": summary.imported, "bytes": size, "peak_rss_growth_mib": round(growth, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
