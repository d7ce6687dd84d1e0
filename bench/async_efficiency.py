"""Label efficiency of asynchronous rounds against synchronous ones at equal label counts, on ATIS and
CLINC150: does labelling from a queue the fast head keeps full (issue 23) cost accuracy?

Runs the real services in process (the stack of bench/headline.py: pool on a temp SQLite, trainer,
scorer, coordinator on CPU, the bundled all-MiniLM-L6-v2, the trainer's default recipe) and, per
dataset and seed, two simulated runs with the same seed set, strategy, batch size and round limit:

  sync   today's rounds: train, score the pool with the fine-tuned model, select a batch, reveal it
  async  rounds as model versions: a simulated annotator labels the run's queue at
         ``--annotator-seconds`` a label while fine-tunes run in the background; the queue is
         refilled every ``--refill-every`` labels by the run's strategy on the fast head's
         probabilities (and topped up from each new checkpoint), and a fine-tune starts once
         ``--batch`` new labels came in since the last one

Each round's model is evaluated on the test split; a round's point is (labels its fine-tune started
with, test accuracy). The asynchronous rounds fall at other label counts (labels keep coming while a
model trains), so the curves are compared on the label range both cover: each is interpolated
linearly and the area under it is the mean accuracy over that range. Target (issue 23): the
asynchronous AUC within 0.5 points of the synchronous one, or better (mean over seeds of the paired
difference). The table also gives the asynchronous curve read at the synchronous rounds' label counts.

The annotator's pace is wall-clock time: an asynchronous run's rounds depend on how long its
fine-tunes take, so it is reproducible only on the same machine, alone.

    python bench/async_efficiency.py                                    # both datasets, 3 seeds (bench/README.md)
    python bench/async_efficiency.py --datasets atis --seeds 0          # a quick look
    python bench/async_efficiency.py --limit 400 --seeds 0 --rounds 2 --max-steps 20 \\
        --annotator-seconds 0.05 --out /tmp/async_efficiency_smoke.json          # a smoke run
    python bench/async_efficiency.py --report-only

Results are appended to the JSON after each run (a restarted benchmark skips what is there), then
summarised into a markdown table beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import logging
import os
import pathlib
import platform
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench import bench_data  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ARMS = ("sync", "async")
WITHIN = 0.005  # the target: asynchronous AUC at most 0.5 points below synchronous

log = logging.getLogger("async_efficiency")


def _headline():
    """bench/headline.py as a module (bench/ is not a package): its in-process stack and run loop."""
    spec = importlib.util.spec_from_file_location("headline_bench", ROOT / "bench" / "headline.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {ROOT / 'bench' / 'headline.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arm_config(dataset: str, args):
    """What builds the run of an arm and a seed (``headline.run_arm``'s ``config``): both arms alike
    but for the asynchronous settings."""
    from lesslabels.client import Amount, RunConfig, StoppingRule
    from lesslabels.contract import Hyperparameters

    overrides = {k: v for k, v in (("num_threads", args.threads), ("max_steps", args.max_steps)) if v}
    if args.max_steps:  # a smoke run: a few steps, whatever the recipe's minimum per class
        overrides.update(min_steps=0, min_steps_per_class=0, max_epochs=1)

    def build(arm: str, seed: int, _args=None) -> RunConfig:
        asynchronous = arm == "async"
        return RunConfig(
            dataset=dataset,
            name=f"async-efficiency-{dataset}-{arm}-seed{seed}",
            strategy=args.strategy,
            seed_strategy=args.seed_strategy,
            seed_size=Amount(fraction=args.seed_size),
            batch_size=Amount(fraction=args.batch),
            stopping=StoppingRule(max_rounds=args.rounds),
            random_seed=seed,
            asynchronous=asynchronous,
            refill_every=args.refill_every if asynchronous else 0,
            annotator_seconds=args.annotator_seconds if asynchronous else 0.0,
            hyperparameters=Hyperparameters(**overrides),
        )

    return build


# ---------------------------------------------------------------- summary


def curve(result: dict) -> tuple[np.ndarray, np.ndarray]:
    rounds = [r for r in result["rounds"] if r["test_count"]]
    return np.array([r["labelled"] for r in rounds], dtype=float), np.array([r["accuracy"] for r in rounds])


def common_range(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """The label range every curve covers."""
    return max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)


def auc(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
    """Mean accuracy of the linearly interpolated curve over [low, high] (its value there when the
    range is one point)."""
    if high <= low:
        return float(np.interp(low, x, y))
    grid = np.unique(np.concatenate([[low, high], x[(x > low) & (x < high)]]))  # [points]
    return float(np.trapezoid(np.interp(grid, x, y), grid) / (high - low))


def summarise(results: list[dict]) -> dict:
    """Per dataset: paired AUC differences per seed over the common range, and the asynchronous
    curve at the synchronous label counts."""
    summary: dict = {}
    for dataset in sorted({r["dataset"] for r in results}):
        runs = {(r["arm"], r["seed"]): r for r in results if r["dataset"] == dataset}
        seeds = sorted(s for (arm, s) in runs if arm == "sync" and ("async", s) in runs)
        per_seed = []
        for seed in seeds:
            sync, asyn = curve(runs[("sync", seed)]), curve(runs[("async", seed)])
            if sync[0].size == 0 or asyn[0].size == 0:
                continue
            low, high = common_range([sync, asyn])
            at_sync = np.interp(sync[0], asyn[0], asyn[1], left=np.nan, right=np.nan)  # [sync rounds]
            per_seed.append(
                {
                    "seed": seed,
                    "range": [low, high],
                    "auc_sync": auc(*sync, low, high),
                    "auc_async": auc(*asyn, low, high),
                    "sync_labelled": sync[0].tolist(),
                    "sync_accuracy": sync[1].tolist(),
                    "async_labelled": asyn[0].tolist(),
                    "async_accuracy": asyn[1].tolist(),
                    "async_at_sync_labels": [None if np.isnan(v) else float(v) for v in at_sync],
                    "wall_seconds": {
                        "sync": runs[("sync", seed)]["wall_seconds"],
                        "async": runs[("async", seed)]["wall_seconds"],
                    },
                }
            )
        if not per_seed:
            continue
        diffs = [p["auc_async"] - p["auc_sync"] for p in per_seed]
        summary[dataset] = {
            "pool_size": runs[("sync", per_seed[0]["seed"])]["pool_size"],
            "seeds": per_seed,
            "auc_sync_mean": float(np.mean([p["auc_sync"] for p in per_seed])),
            "auc_async_mean": float(np.mean([p["auc_async"] for p in per_seed])),
            "auc_difference_mean": float(np.mean(diffs)),
            "auc_difference_std": float(np.std(diffs)),
            "meets_target": bool(np.mean(diffs) >= -WITHIN),
        }
    return summary


def markdown(data: dict) -> str:
    meta, summary = data["meta"], data.get("summary", {})
    s = meta.get("settings", {})
    smoke = f", a random {s['limit']} training rows (smoke)" if s.get("limit") else ""
    lines = [
        f"Simulated runs, {s.get('strategy')} with a {s.get('seed_strategy')} seed set of {s.get('seed_size'):g} of the "
        f"pool, batches of {s.get('batch'):g}, {s.get('rounds')} rounds; asynchronous: annotator "
        f"{s.get('annotator_seconds'):g} s a label, refill every {s.get('refill_every')}{smoke}; recorded "
        f"{meta.get('date')} on {meta.get('machine')} ({meta.get('cpus')} CPUs), total wall time "
        f"{meta.get('wall_hours', 0):.2f} h.",
        "",
        "AUC: mean test accuracy of the interpolated curve over the label range both runs of a seed cover.",
        "",
        "| dataset | seeds | AUC sync | AUC async | async − sync (points, mean ± sd) | per seed | target (≥ −0.5) |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, e in summary.items():
        per_seed = ", ".join(f"{p['seed']}: {100 * (p['auc_async'] - p['auc_sync']):+.2f}" for p in e["seeds"])
        lines.append(
            f"| {dataset} | {len(e['seeds'])} | {100 * e['auc_sync_mean']:.2f} | {100 * e['auc_async_mean']:.2f} | "
            f"{100 * e['auc_difference_mean']:+.2f} ± {100 * e['auc_difference_std']:.2f} | {per_seed} | "
            f"{'met' if e['meets_target'] else 'missed'} |"
        )
    lines.append("\nCurves per seed (labels → test accuracy %), and async read at the sync label counts:\n")
    for dataset, e in summary.items():
        for p in e["seeds"]:

            def points(xs, ys):
                return ", ".join(f"{int(x)}→{100 * y:.2f}" for x, y in zip(xs, ys, strict=True))

            at = ", ".join(
                f"{int(x)}→{'—' if v is None else f'{100 * v:.2f}'}"
                for x, v in zip(p["sync_labelled"], p["async_at_sync_labels"], strict=True)
            )
            lines.append(
                f"- {dataset} seed {p['seed']} (range {int(p['range'][0])}–{int(p['range'][1])}; wall "
                f"{p['wall_seconds']['sync']:.0f} s sync, {p['wall_seconds']['async']:.0f} s async): "
                f"sync {points(p['sync_labelled'], p['sync_accuracy'])}; async "
                f"{points(p['async_labelled'], p['async_accuracy'])}; async at sync labels {at}"
            )
    return "\n".join(lines) + "\n"


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"results": [], "meta": {}}


def save(path: pathlib.Path, data: dict) -> None:
    data["summary"] = summarise(data["results"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    path.with_suffix(".md").write_text(markdown(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(bench_data.DATASETS), choices=bench_data.DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every run")
    parser.add_argument("--seed-size", type=float, default=0.02, help="seed set, a fraction of the pool")
    parser.add_argument("--batch", type=float, default=0.02, help="labels between fine-tunes, a fraction of the pool")
    parser.add_argument("--strategy", default="entropy")
    parser.add_argument("--seed-strategy", default="random", choices=("random", "diverse"))
    parser.add_argument(
        "--annotator-seconds", type=float, default=2.0, help="asynchronous: seconds a label (the issue's 2 s)"
    )
    parser.add_argument("--refill-every", type=int, default=10, help="asynchronous: labels between refills")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the trainer's default)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap fine-tunes at N steps (smoke runs; 0: recipe)")
    parser.add_argument("--limit", type=int, default=0, help="a seeded random N training rows (smoke runs)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "async_efficiency.json")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    for noisy in ("lesslabels", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = load(args.out)
    if args.report_only:
        save(args.out, data)
        print(markdown(data))
        return 0
    settings = {
        k: v for k, v in vars(args).items() if k not in ("datasets", "seeds", "arms", "out", "report_only", "threads")
    }
    if data["meta"].get("settings") not in (None, settings):
        raise SystemExit(f"{args.out} holds results of other settings {data['meta']['settings']}; use another --out")
    data["meta"].update(
        settings=settings,
        machine=platform.platform(),
        cpus=os.cpu_count(),
        command="python bench/async_efficiency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    headline = _headline()
    started = time.monotonic()
    for dataset in args.datasets:
        todo = [
            (seed, arm)
            for seed in args.seeds
            for arm in args.arms
            if not any((r["dataset"], r["seed"], r["arm"]) == (dataset, seed, arm) for r in data["results"])
        ]
        if not todo:
            continue
        with tempfile.TemporaryDirectory(prefix="async-efficiency-") as tmp:
            workdir = pathlib.Path(tmp)
            stack = headline.Stack(workdir, args.threads or 2)
            try:
                counts = bench_data.import_dataset(stack.pool_address, dataset, workdir, args.limit)
                data["meta"].setdefault("counts", {})[dataset] = counts
                build = arm_config(dataset, args)
                for seed, arm in todo:
                    log.info("start %s %s seed=%d", dataset, arm, seed)
                    result = headline.run_arm(stack, arm, seed, args, config=build)
                    result["dataset"] = dataset
                    log.info(
                        "done %s %s seed=%d wall=%.0fs rounds=%s",
                        dataset,
                        arm,
                        seed,
                        result["wall_seconds"],
                        [(r["labelled"], round(r["accuracy"], 4)) for r in result["rounds"]],
                    )
                    data["results"].append(result)
                    data["meta"]["wall_hours"] = data["meta"].get("wall_hours", 0.0) + result["wall_seconds"] / 3600
                    data["meta"]["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                    save(args.out, data)
            finally:
                stack.stop()
    log.info("wall time this invocation: %.1f min", (time.monotonic() - started) / 60)
    save(args.out, data)
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
