"""Peak memory of a server for each heavy request (big imports, listings, scoring requests).

Each case starts a fresh server as a subprocess (``python -m lesslabels <service>`` on loopback,
the ``lesslabels`` that PYTHONPATH gives), waits until it is SERVING, reads its peak resident
memory (VmHWM in /proc/<pid>/status), sends the request, and reads the peak again: the growth is
what the request cost at most. Cases:

- ``score-8mib``: one 8 MiB text to ``Score`` (bundled encoder, embeddings);
- ``oip-raw-60mib``: Open Inference Protocol ``ModelInfer`` with 60 MiB of raw BYTES (empty
  elements) under shape [1];
- ``list-samples-750x100kb``: ``ListSamples`` over 750 texts of 100 kB (imported first; the
  import's own growth is recorded too);
- ``import-100mib``: ``ImportSamples`` of a 100 MiB headerless ``label,text`` CSV of ~1 kB texts
  (~100,000 rows) in 1 MiB messages.

Usage: ``.venv/bin/python bench/heavy_requests.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import grpc

from lesslabels.common.channels import make_channel, wait_until_serving
from lesslabels.inference import grpc_predict_v2_pb2 as pb
from lesslabels.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from lesslabels.v1 import common_pb2, pool_pb2, pool_pb2_grpc, scorer_pb2, scorer_pb2_grpc

MiB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


@contextlib.contextmanager
def _server(service: str, service_name: str, *args: str) -> Iterator[tuple[str, int]]:
    port = _free_port()
    command = [sys.executable, "-m", "lesslabels", service, "--host", "127.0.0.1", "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        address = f"127.0.0.1:{port}"
        wait_until_serving(address, service=service_name, timeout=180)
        yield address, process.pid
    finally:
        process.terminate()
        process.wait(30)


def _measure(pid: int, call) -> dict:
    before = _peak_rss(pid)
    started = time.monotonic()
    try:
        call()
        outcome = "OK"
    except grpc.RpcError as exc:
        outcome = f"{exc.code().name}: {(exc.details() or '')[:100]}"
    seconds = time.monotonic() - started
    return {
        "peak_rss_before_mib": round(before / MiB, 1),
        "peak_rss_growth_mib": round((_peak_rss(pid) - before) / MiB, 1),
        "seconds": round(seconds, 2),
        "outcome": outcome,
    }


def score_8mib(tmp: pathlib.Path) -> dict:
    with _server("scorer", "lesslabels.v1.ScorerService", "--checkpoint-dir", str(tmp / "ckpt")) as (address, pid):
        text = "the flight from boston to denver " * (8 * MiB // 33)
        model = common_pb2.ModelRef(base_model="default")
        with make_channel(address) as channel:
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            # Load the model first, so that the growth measured is the request's own.
            stub.Score(scorer_pb2.ScoreRequest(model=model, texts=["warm up"], include_embeddings=True), timeout=300)
            request = scorer_pb2.ScoreRequest(model=model, texts=[text], include_embeddings=True)
            return _measure(pid, lambda: stub.Score(request, timeout=300))


def oip_raw_60mib(tmp: pathlib.Path) -> dict:
    store = tmp / "ckpt"
    (store / "ckpt-bench").mkdir(parents=True)
    # A manifest is all ModelInfer reads before the input is decoded.
    (store / "ckpt-bench" / "manifest.json").write_text(json.dumps({"id": "bench", "labels": ["a", "b"], "run_id": 0}))
    with _server("scorer", "lesslabels.v1.ScorerService", "--checkpoint-dir", str(store)) as (address, pid):
        request = pb.ModelInferRequest(model_name="bench")
        request.inputs.add(name="text", datatype="BYTES", shape=[1])
        request.raw_input_contents.append(struct.pack("<I", 0) * (60 * MiB // 4))
        with make_channel(address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            return _measure(pid, lambda: stub.ModelInfer(request, timeout=300))


def _import_messages(header: pool_pb2.ImportHeader, pieces: Iterator[bytes]) -> Iterator[pool_pb2.ImportSamplesRequest]:
    yield pool_pb2.ImportSamplesRequest(header=header)
    for piece in pieces:
        for start in range(0, len(piece), MiB):
            yield pool_pb2.ImportSamplesRequest(data=piece[start : start + MiB])


def list_samples_750x100kb(tmp: pathlib.Path) -> dict:
    database = f"sqlite:///{tmp / 'pool.db'}"
    with _server("pool", "lesslabels.v1.PoolService", "--database-url", database) as (address, pid):
        rows = b"".join(json.dumps({"text": f"{i} " + "x" * 99_990, "label": "a"}).encode() + b"\n" for i in range(750))
        header = pool_pb2.ImportHeader(dataset="long", format=pool_pb2.IMPORT_FORMAT_JSONL, create_dataset=True)
        with make_channel(address) as channel:
            stub = pool_pb2_grpc.PoolServiceStub(channel)
            imported = _measure(pid, lambda: stub.ImportSamples(_import_messages(header, iter([rows])), timeout=300))

            def list_all():
                count = sum(
                    len(p.samples) for p in stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="long"), timeout=300)
                )
                if count != 750:
                    raise RuntimeError(f"listed {count} samples, not 750")

            listed = _measure(pid, list_all)
        return {**listed, "import_75mb": imported}


def _csv_pieces(size: int) -> Iterator[bytes]:
    """A headerless label,text CSV of ``size`` bytes or a little more, ~1 kB a row, in pieces of ~1 MiB."""
    labels = ("flight", "airfare", "ground_service", "airline", "abbreviation")
    text = "show me the flights from boston to denver on monday morning please " * 15
    sent, row = 0, 0
    while sent < size:
        piece = "".join(f"{labels[(row + i) % 5]},{row + i} {text}\n" for i in range(1000)).encode()
        row += 1000
        sent += len(piece)
        yield piece


def import_100mib(tmp: pathlib.Path) -> dict:
    database = f"sqlite:///{tmp / 'pool.db'}"
    with _server("pool", "lesslabels.v1.PoolService", "--database-url", database) as (address, pid):
        header = pool_pb2.ImportHeader(dataset="big", create_dataset=True)
        with make_channel(address) as channel:
            stub = pool_pb2_grpc.PoolServiceStub(channel)
            result = _measure(
                pid, lambda: stub.ImportSamples(_import_messages(header, _csv_pieces(100 * MiB)), timeout=600)
            )
        result["bytes"] = sum(len(piece) for piece in _csv_pieces(100 * MiB))
        return result


CASES = {
    "score-8mib": score_8mib,
    "oip-raw-60mib": oip_raw_60mib,
    "list-samples-750x100kb": list_samples_750x100kb,
    "import-100mib": import_100mib,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="run only these (repeatable)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = {}
    for name in args.case or CASES:
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = CASES[name](pathlib.Path(tmp))
        print(name, json.dumps(results[name]), flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
