"""Pool store at scale: importing N rows, then adding rows to the large dataset (SQLite).

Synthetic short texts ("text <n> of the pool", 8 labels), imported through ``PoolStore`` (the pool
service's core, no gRPC) into a fresh SQLite file in ``--chunk``-row files, then ``--add`` new
rows as one more import. Prints the seconds of each step and the process's peak RSS as JSON.

    python bench/pool_scale.py --rows 100000 --add 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

LABELS = ("flight", "airfare", "ground", "abbreviation", "capacity", "meal", "quantity", "airline")


def csv_bytes(start: int, stop: int) -> bytes:
    return "".join(f"{LABELS[i % 8]},text {i} of the pool\n" for i in range(start, stop)).encode()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--add", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per import call")
    args = parser.parse_args(argv)

    from lesslabels.pool.store import PoolStore

    with tempfile.TemporaryDirectory() as tmp:
        store = PoolStore(f"sqlite:///{tmp}/pool.db")
        started = time.perf_counter()
        for start in range(0, args.rows, args.chunk):
            store.import_samples("big", csv_bytes(start, min(args.rows, start + args.chunk)), create_dataset=True)
        imported = time.perf_counter() - started
        started = time.perf_counter()
        result = store.import_samples("big", csv_bytes(args.rows, args.rows + args.add))
        added = time.perf_counter() - started
    out = {
        "rows": args.rows,
        "import_seconds": round(imported, 2),
        "add": args.add,
        "add_seconds": round(added, 2),
        "add_duplicates": result.duplicate_rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
