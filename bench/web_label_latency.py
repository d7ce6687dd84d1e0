"""Labelling speed through the web app: the round trip of one submitted label (browser -> web app ->
SDK -> coordinator -> pool and back) against the real stack as local processes.

    python bench/web_label_latency.py --labels 200 --out bench/results/web_label_latency.json

A benchmark, not a test: it prints the median and the 90th percentile (target: median under 50 ms).
The run uses a random seed set, so no model is loaded before the batch waits for labels; the run is
stopped before it trains.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
import sys
import tempfile
import time

import httpx

from lesslabels.cli.stack import LocalStack
from lesslabels.client import Amount, CoordinatorClient, PoolClient, RunConfig, StoppingRule
from lesslabels.demo.data import synthetic_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=200, help="labels to submit (the seed batch size)")
    parser.add_argument("--out", type=pathlib.Path, help="write the timings as JSON")
    args = parser.parse_args(argv)
    train, test = synthetic_rows()
    gold = {text: label for label, text in train}
    with tempfile.TemporaryDirectory(prefix="lesslabels-bench-") as state, LocalStack(state, web_port=0) as stack:
        with PoolClient(stack.address("pool")) as pool, CoordinatorClient(stack.address("coordinator")) as coordinator:
            pool.import_samples("bench", [(text, label) for label, text in train], split="train")
            pool.import_samples("bench", [(text, label) for label, text in test], split="test")
            run = coordinator.start_run(
                RunConfig(
                    dataset="bench",
                    oracle="human",
                    seed_strategy="random",
                    seed_size=Amount(count=args.labels),
                    stopping=StoppingRule(max_rounds=1),
                )
            )
            for _ in coordinator.watch(run.id, until_waiting=True):
                pass
            with httpx.Client(base_url=stack.web_url.rstrip("/"), timeout=30) as browser:
                page = browser.get(f"/runs/{run.id}/label")
                found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
                if found is None:
                    raise SystemExit(f"no csrf-token on the labelling page (HTTP {page.status_code})")
                csrf = found.group(1)
                queue = browser.get(f"/api/runs/{run.id}/queue").json()
                items = queue["items"][:-1]  # the last one would start training
                timings = []
                for i, item in enumerate(items):
                    body = {
                        "sample_id": item["sample_id"],
                        "label": gold[item["text"]],
                        "annotator": "bench",
                        "nonce": f"bench{i:08d}",
                    }
                    started = time.perf_counter()
                    reply = browser.post(f"/api/runs/{run.id}/labels", json=body, headers={"X-CSRF-Token": csrf})
                    timings.append((time.perf_counter() - started) * 1000)
                    reply.raise_for_status()
            coordinator.cancel(run.id)
    timings.sort()
    result = {
        "labels": len(timings),
        "median_ms": round(statistics.median(timings), 1),
        "p90_ms": round(timings[int(0.9 * (len(timings) - 1))], 1),
        "mean_ms": round(statistics.fmean(timings), 1),
    }
    print(
        f"{result['labels']} labels: median {result['median_ms']} ms, p90 {result['p90_ms']} ms, "
        f"mean {result['mean_ms']} ms per submitted label (target: median under 50 ms)"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
