"""Peak memory of a server for each heavy request (big imports, listings, scoring requests).

Each case starts a fresh server as a subprocess (``python -m lesslabels <service>`` on loopback,
the ``lesslabels`` that PYTHONPATH gives), waits until it is SERVING, reads its peak resident
memory (VmHWM in /proc/<pid>/status), sends the request, and reads the peak again: the growth is
what the request cost at most. Cases:

- ``score-8mib``: one 8 MiB text to ``Score`` (bundled encoder, embeddings);
- ``score-4096x4kib`` / ``score-4096x15kib``: 4,096 texts of 4 KiB (16 MiB) / 15 KiB (60 MiB) to
  ``Score`` (bundled encoder, max_length 512, embeddings);
- ``score-16x4096x4kib``: 16 such 16 MiB requests at once (the scorer's ``--max-inflight-mb``
  budget takes what fits and refuses the rest with RESOURCE_EXHAUSTED);
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


def _texts(size: int, n: int = 4096) -> list[str]:
    """``n`` texts of ``size`` characters of English-like words (ASCII: characters = bytes)."""
    words = "show me the cheapest flights from boston to denver on monday morning please ".split()
    out = []
    for i in range(n):
        text = f"{i} " + " ".join(words[(i + k) % len(words)] for k in range(size // 5))
        out.append(text[:size])
    return out


def _warm(stub, model) -> None:
    """Load the model and run full-size batches on every batch worker, so that the growth measured
    is the request's own, not the scorer's forward-pass working set (bounded by --max-tokens and
    --batch-workers, whatever the requests)."""
    texts = _texts(4096, 256)
    stub.Score(scorer_pb2.ScoreRequest(model=model, texts=texts, include_embeddings=True), timeout=600)


#: Extra flags for the scorer of the score-* cases (--scorer-arg).
SCORER_ARGS: list[str] = []


def _score_many(tmp: pathlib.Path, size: int) -> dict:
    with _server("scorer", "lesslabels.v1.ScorerService", "--checkpoint-dir", str(tmp / "ckpt"), *SCORER_ARGS) as (
        address,
        pid,
    ):
        model = common_pb2.ModelRef(base_model="default")
        request = scorer_pb2.ScoreRequest(model=model, texts=_texts(size), include_embeddings=True)
        with make_channel(address) as channel:
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            _warm(stub, model)
            result = _measure(pid, lambda: stub.Score(request, timeout=1800))
        result["request_mib"] = round(request.ByteSize() / MiB, 1)
        result["growth_per_request_byte"] = round(result["peak_rss_growth_mib"] / result["request_mib"], 2)
        return result


def score_4096x4kib(tmp: pathlib.Path) -> dict:
    return _score_many(tmp, 4096)


def score_4096x15kib(tmp: pathlib.Path) -> dict:
    return _score_many(tmp, 15 * 1024)


def score_16x4096x4kib(tmp: pathlib.Path) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    with _server("scorer", "lesslabels.v1.ScorerService", "--checkpoint-dir", str(tmp / "ckpt"), *SCORER_ARGS) as (
        address,
        pid,
    ):
        model = common_pb2.ModelRef(base_model="default")
        request = scorer_pb2.ScoreRequest(model=model, texts=_texts(4096), include_embeddings=True)
        with make_channel(address) as channel:
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            _warm(stub, model)

            def one(_: int) -> str:
                try:
                    stub.Score(request, timeout=3600)
                    return "OK"
                except grpc.RpcError as exc:
                    return exc.code().name

            outcomes: list[str] = []

            def all_at_once():
                with ThreadPoolExecutor(16) as pool:
                    outcomes.extend(pool.map(one, range(16)))

            result = _measure(pid, all_at_once)
        result["request_mib"] = round(request.ByteSize() / MiB, 1)
        result["outcomes"] = {name: outcomes.count(name) for name in sorted(set(outcomes))}
        return result


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
    "score-4096x4kib": score_4096x4kib,
    "score-4096x15kib": score_4096x15kib,
    "score-16x4096x4kib": score_16x4096x4kib,
    "oip-raw-60mib": oip_raw_60mib,
    "list-samples-750x100kb": list_samples_750x100kb,
    "import-100mib": import_100mib,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="run only these (repeatable)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--scorer-arg", action="append", default=[], help="a flag for the scorer of the score-* cases (repeatable)"
    )
    args = parser.parse_args(argv)
    SCORER_ARGS[:] = args.scorer_arg
    results: dict = {"scorer_args": args.scorer_arg} if args.scorer_arg else {}
    for name in args.case or list(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = CASES[name](pathlib.Path(tmp))
        print(name, json.dumps(results[name]), flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
