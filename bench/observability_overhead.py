"""Overhead of traces and metrics (issue 28, item 5): a tiny run and scoring, with both on against off.

Each trial is a fresh process running the real pool, trainer, scorer and coordinator servers in
process (``tests.stack.start_real_stack``) with the tiny random BERT (2 layers, hidden 32), so that
the model's share of the time is small and the per-call cost of tracing and metrics shows as much as
it can (a worst case: with MiniLM the same calls sit next to far more model time). Modes:

- ``off``: no ``OTEL_*`` variable (no tracer, no tracing interceptor) and no /metrics endpoint (the
  counters are updated all the same: they cannot be turned off);
- ``on``: ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at an OTLP/gRPC sink in the trial's process that
  accepts and counts every span (the real exporter, batching, encoding and sending), every server
  with its /metrics endpoint, scraped every ``--scrape-every`` seconds.

A trial: import a toy dataset (``--train`` texts, 4 labels), then (1) a run of ``--rounds`` rounds
(seed ``--seed-size``, batches of ``--batch-size``, entropy, 1 epoch) from StartRun to COMPLETED;
(2) scoring with the run's checkpoint: ``--score-requests`` Score calls of 16 texts, one after the
other, then ``--pool-scorings`` ScorePool streams over the whole training pool. Trials alternate
off, on, off, on ... (``--repeats`` each), so background load hits both alike; the report gives each
phase's median per mode and the ratio on/off.

    .venv/bin/python bench/observability_overhead.py --out bench/results/observability_overhead.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODES = ("off", "on")


def start_span_sink() -> tuple[object, int, list[int]]:
    """An OTLP/gRPC trace receiver on a free local port that answers every Export and counts the spans."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received = [0]

    class Sink(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            received[0] += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Sink(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, received


def scrape_forever(ports: dict[str, int], every: float, stop: threading.Event, scrapes: list[int]) -> None:
    while not stop.wait(every):
        for port in ports.values():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                reply.read()
            scrapes[0] += 1


def trial(mode: str, args: argparse.Namespace) -> dict:
    """One trial in this process; returns the phases' wall times."""
    sink = None
    if mode == "on":
        sink, sink_port, received = start_span_sink()
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
        os.environ["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    import torch

    from lesslabels.client import (
        Amount,
        CoordinatorClient,
        Hyperparameters,
        RunConfig,
        SampleQuery,
        ScorerClient,
        StoppingRule,
    )
    from lesslabels.common import tracing
    from tests.stack import load_toy_dataset, start_real_stack, toy_rows
    from tests.tiny_model import save_tiny_bert

    torch.set_num_threads(1)
    assert tracing.configure("bench") is (mode == "on")
    work = pathlib.Path(tempfile.mkdtemp(prefix="obs-overhead-"))
    model = save_tiny_bert(work / "tiny-bert")
    stack, stop_stack = start_real_stack(work, model_dirs=(str(model),), metrics=mode == "on")
    stop_scraping, scrapes = threading.Event(), [0]
    if mode == "on":
        threading.Thread(
            target=scrape_forever, args=(stack.metrics_ports, args.scrape_every, stop_scraping, scrapes), daemon=True
        ).start()
    try:
        load_toy_dataset(stack.pool_address, train=args.train, test=40)
        config = RunConfig(
            dataset="toy",
            base_model=str(model),
            strategy="entropy",
            random_seed=1,
            seed_size=Amount(count=args.seed_size),
            batch_size=Amount(count=args.batch_size),
            stopping=StoppingRule(max_rounds=args.rounds),
            hyperparameters=Hyperparameters(max_epochs=1, batch_size=16, max_length=16, num_threads=1),
        )
        with CoordinatorClient(stack.coordinator_address, timeout=60) as coordinator:
            begun = time.perf_counter()
            run = coordinator.start_run(config)
            last = list(coordinator.watch(run.id))[-1].run
            run_seconds = time.perf_counter() - begun
            assert last.state == "COMPLETED", last.error
        texts = [text for _, text in toy_rows(16 * args.score_requests, offset=50_000)]
        with ScorerClient(stack.scorer_address, timeout=60) as scorer:
            scorer.score(texts[:16], run=run.id)  # the checkpoint loaded before the clock starts
            begun = time.perf_counter()
            for i in range(args.score_requests):
                scorer.score(texts[16 * i : 16 * (i + 1)], run=run.id)
            score_seconds = time.perf_counter() - begun
            begun = time.perf_counter()
            for _ in range(args.pool_scorings):
                scores = scorer.score_pool(SampleQuery("toy", include_all=True), run=run.id)
                assert len(scores.sample_ids) == args.train
            pool_seconds = time.perf_counter() - begun
    finally:
        stop_scraping.set()
        stop_stack()
    spans = 0
    if sink is not None:
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
        spans = received[0]
        sink.stop(0)  # type: ignore[attr-defined]
    return {
        "mode": mode,
        "run_seconds": run_seconds,
        "score_seconds": score_seconds,
        "pool_score_seconds": pool_seconds,
        "spans_exported": spans,
        "metrics_scrapes": scrapes[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="trials of each mode (alternating)")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--seed-size", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--score-requests", type=int, default=200)
    parser.add_argument("--pool-scorings", type=int, default=5)
    parser.add_argument("--scrape-every", type=float, default=5.0, help="seconds between scrapes of every /metrics")
    parser.add_argument("--out", type=pathlib.Path)
    parser.add_argument("--trial", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        print(json.dumps(trial(args.trial, args)))
        return 0
    options = []
    for name in ("repeats", "train", "seed_size", "batch_size", "rounds", "score_requests", "pool_scorings"):
        options += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    options += ["--scrape-every", str(args.scrape_every)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    load_before = os.getloadavg()
    trials = []
    for repeat in range(args.repeats):
        for mode in MODES:
            done = subprocess.run(
                [sys.executable, __file__, *options, "--trial", mode],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"trial {mode} #{repeat + 1} failed")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["load_average_1m_after"] = os.getloadavg()[0]
            trials.append(result)
            print(json.dumps(result), file=sys.stderr)
    summary = {}
    for phase in ("run_seconds", "score_seconds", "pool_score_seconds"):
        medians = {mode: statistics.median(t[phase] for t in trials if t["mode"] == mode) for mode in MODES}
        summary[phase] = {**medians, "ratio_on_off": medians["on"] / medians["off"]}
    report = {
        "script": "bench/observability_overhead.py",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_before": load_before},
        "options": vars(args) | {"out": str(args.out) if args.out else None},
        "summary": summary,
        "trials": trials,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
