"""The headline benchmark: how few ATIS labels reach full-data accuracy with active learning.

Runs the real services in process (pool on a temp SQLite, trainer, scorer, coordinator on CPU)
with the bundled all-MiniLM-L6-v2, and for every seed:

  full      one round on every training label: the full-data accuracy to match
  original  the original protocol: 5% random seed, +10% of the pool per round, entropy
  best      our strategy and schedule: diverse seed, small clustered-entropy batches
  random    random sampling on the schedule of ``best``
  entropy, margin, least-confidence, ratio, clustered-entropy (``--arms``)
            each query strategy alone on the schedule of ``random``, so that the strategy is the
            only difference from ``random``

``--strategy-seed`` picks the initial set of ``random`` and the strategy arms: ``diverse`` (the
default; k-means over the pretrained encoder's embeddings, as ``best``) or ``random``. Files
recorded before the option existed used ``random``.

Every arm uses the same fine-tuning settings: at least ``--min-steps`` and at most
``--max-steps`` optimizer steps per training, at most ``--epochs`` epochs unless ``--min-steps``
needs more, early stopping on a held-out 10 %. Results are appended to the JSON file after each
run (a restarted benchmark skips what is already there), then summarised: the labels needed to
come within 0.5 accuracy points of the mean full-data accuracy, the area under each learning
curve, a plot, and the total wall time.

    python bench/headline.py --seeds 0 1 2                        # everything (hours on 2 cores)
    python bench/headline.py --seeds 0 --arms best random --max-rounds 3 --epochs 4   # a quick look
    python bench/headline.py --report-only                          # redo table + plot from the JSON

Meant to run in the background: ``nohup python bench/headline.py --seeds 0 1 2 > bench/results/headline.log 2>&1 &``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import os
import pathlib
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from lesslabels.v1 import run_pb2

DATA = ROOT.parent / "shared" / "data" / "atis"
RESULTS = ROOT / "bench" / "results"
ARMS = ("full", "best", "random", "original")
# Each uncertainty strategy alone, on exactly the schedule and initial set of ``random``, so the
# only difference from ``random`` is the query strategy (--arms entropy margin ... random).
STRATEGY_ARMS = ("entropy", "margin", "least-confidence", "ratio", "clustered-entropy")
WITHIN = 0.005  # 0.5 accuracy points

log = logging.getLogger("headline")


# ---------------------------------------------------------------- arms


def arm_config(arm: str, seed: int, args) -> run_pb2.RunConfig:
    from lesslabels.v1 import common_pb2, run_pb2

    hyper = common_pb2.Hyperparameters(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        patience=args.patience,
        max_steps=args.max_steps,
        min_steps=args.min_steps,
        max_length=64,
        num_threads=args.threads,
    )
    config = run_pb2.RunConfig(
        dataset="atis", name=f"headline-{arm}-seed{seed}", random_seed=seed, hyperparameters=hyper
    )
    if arm == "full":
        config.seed_size.fraction = 1.0
        config.stopping.max_rounds = 1
    elif arm == "original":
        config.strategy = run_pb2.STRATEGY_ENTROPY
        config.seed_strategy = run_pb2.SEED_STRATEGY_RANDOM
        config.seed_size.fraction = 0.05
        config.batch_size.fraction = 0.10
        config.stopping.max_rounds = args.original_rounds
    elif arm in ("best", "random") or arm in STRATEGY_ARMS:
        if arm == "best":
            config.strategy = run_pb2.STRATEGY_CLUSTERED_ENTROPY
            config.seed_strategy = run_pb2.SEED_STRATEGY_DIVERSE
        else:
            config.strategy = run_pb2.Strategy.Value("STRATEGY_" + arm.upper().replace("-", "_"))  # type: ignore[assignment]  # Value() is typed int
            config.seed_strategy = run_pb2.SeedStrategy.Value("SEED_STRATEGY_" + args.strategy_seed.upper())  # type: ignore[assignment]  # Value() is typed int
        config.seed_size.fraction = args.best_seed
        config.batch_size.fraction = args.best_batch
        config.stopping.max_rounds = args.max_rounds
        config.warm_start = args.warm_start
    else:
        raise SystemExit(f"unknown arm {arm!r}; choose from {', '.join(ARMS + STRATEGY_ARMS)}")
    return config


# ---------------------------------------------------------------- the stack


class Stack:
    """pool + trainer + scorer + coordinator servers in this process, on port 0."""

    def __init__(self, workdir: pathlib.Path, threads: int, runtime: str = "torch"):
        """``runtime``: the scorer's ("torch" or "onnx": then the trainer publishes ONNX graphs)."""
        import torch

        from lesslabels.common.config import ServerSettings
        from lesslabels.coordinator.main import build_server as build_coordinator
        from lesslabels.pool.main import build_server as build_pool
        from lesslabels.scorer.main import build_server as build_scorer
        from lesslabels.scorer.model_cache import CacheConfig
        from lesslabels.trainer.main import build_server as build_trainer

        torch.set_num_threads(threads)
        settings = ServerSettings(host="127.0.0.1", port=0, grace_seconds=1.0, workers=8, log_level="WARNING")
        self.servers = []
        pool = build_pool(settings, f"sqlite:///{workdir / 'pool.db'}")
        self._up(pool)
        self.pool_address = f"127.0.0.1:{pool.port}"
        trainer = build_trainer(
            settings,
            self.pool_address,
            workdir / "checkpoints",
            num_threads=threads,
            keep_checkpoints=0,
            onnx_export=runtime == "onnx",
        )
        self._up(trainer)
        scorer = build_scorer(
            settings,
            str(workdir / "checkpoints"),
            self.pool_address,
            cache_config=CacheConfig(runtime=runtime, onnx_threads=threads),
        )
        self._up(scorer)
        coordinator = build_coordinator(
            settings, self.pool_address, f"127.0.0.1:{trainer.port}", f"127.0.0.1:{scorer.port}", rpc_timeout=120
        )
        coordinator.start()
        coordinator.ready()
        self.servers.append(coordinator)
        self.coordinator_address = f"127.0.0.1:{coordinator.port}"

    def _up(self, server) -> None:
        server.start()
        server.set_serving()
        self.servers.append(server)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop(0)


def import_atis(stack: Stack, workdir: pathlib.Path, limit: int) -> dict:
    from lesslabels.client import PoolClient

    counts = {}
    with PoolClient(stack.pool_address) as pool:
        for split in ("train", "test"):
            path = DATA / f"atis_intents_{split}.csv"
            if limit:  # a stratification-free prefix, for smoke runs only
                with open(path, newline="", encoding="utf-8") as f:
                    rows = list(csv.reader(f))[: limit if split == "train" else max(limit // 5, 50)]
                path = workdir / f"{split}.csv"
                with open(path, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerows(rows)
            summary = pool.import_file(path, "atis", split=split, format="csv", timeout=300)
            counts[split] = summary.imported
    return counts


def run_arm(stack: Stack, arm: str, seed: int, args, config=None) -> dict:
    """One arm of one seed; ``config(arm, seed, args)`` builds its run (``arm_config`` by default)."""
    from lesslabels.client import CoordinatorClient, Metrics

    started = time.monotonic()
    with CoordinatorClient(stack.coordinator_address, timeout=60) as coordinator:
        run = coordinator.start_run((config or arm_config)(arm, seed, args))
        last = None
        for event in coordinator.watch(run.id):
            if event.round is not None and event.message and event.message != last and "test accuracy" in event.message:
                log.info("arm=%s seed=%d %s", arm, seed, event.message)
                last = event.message
        detail = coordinator.get_run(run.id)
    if detail.run.state != "COMPLETED":
        raise RuntimeError(f"{arm} seed {seed}: run {run.id} ended {detail.run.state}: {detail.run.error}")
    unevaluated = Metrics()
    return {
        "arm": arm,
        "seed": seed,
        "run_id": detail.run.id,
        "pool_size": detail.run.pool_size,
        "wall_seconds": round(time.monotonic() - started, 1),
        "stop_reason": detail.run.stop_reason,
        "rounds": [
            {
                "round": r.index,
                "labelled": r.labelled_count,
                "accuracy": (r.test or unevaluated).accuracy,
                "macro_f1": (r.test or unevaluated).macro_f1,
                "test_count": (r.test or unevaluated).count,
                "agreement": r.agreement,
                "train_seconds": round(r.train_seconds, 1),
                "score_seconds": round(r.score_seconds, 1),
            }
            for r in detail.rounds
        ],
    }


# ---------------------------------------------------------------- summary


def curve(result: dict) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([r["labelled"] for r in result["rounds"]], dtype=float)  # [rounds]
    y = np.array([r["accuracy"] for r in result["rounds"]])  # [rounds]
    return x, y


def area_under_curve(x_fraction: np.ndarray, y: np.ndarray) -> float:
    """Mean accuracy over the labelled-fraction range the curve covers (trapezoids / width)."""
    if x_fraction.size < 2:
        return float(y[0]) if y.size else float("nan")
    return float(np.trapezoid(y, x_fraction) / (x_fraction[-1] - x_fraction[0]))


def summarise(results: list[dict], full_results: Sequence[dict] = ()) -> dict:
    """Per-arm mean curves, AUCs and labels to target. The target comes from the ``full`` arm of
    ``results``, or else from ``full_results`` (another file's full-data runs)."""
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    summary: dict = {"arms": {}}
    full_runs = by_arm.get("full") or [r for r in full_results if r["arm"] == "full"]
    full = [r["rounds"][-1]["accuracy"] for r in full_runs]
    target = float(np.mean(full)) - WITHIN if full else None
    if full:
        summary["full_accuracy_mean"] = float(np.mean(full))
        summary["full_accuracy_std"] = float(np.std(full))
        summary["target_accuracy"] = target
    for arm, runs in by_arm.items():
        if arm == "full":
            continue
        pool = runs[0]["pool_size"]
        curves = [curve(r) for r in runs]
        n = min(len(x) for x, _ in curves)
        xs = np.stack([x[:n] for x, _ in curves])  # [seeds, rounds]
        ys = np.stack([y[:n] for _, y in curves])  # [seeds, rounds]
        mean_x, mean_y = xs.mean(axis=0), ys.mean(axis=0)
        entry = {
            "seeds": [r["seed"] for r in runs],
            "labelled": mean_x.tolist(),
            "labelled_fraction": (mean_x / pool).tolist(),
            "accuracy_mean": mean_y.tolist(),
            "accuracy_std": ys.std(axis=0).tolist(),
            "auc": area_under_curve(mean_x / pool, mean_y),
            "auc_per_seed": [area_under_curve(x / pool, y) for x, y in zip(xs, ys, strict=True)],
            "wall_seconds_mean": float(np.mean([r["wall_seconds"] for r in runs])),
        }
        if target is not None:
            reached = np.flatnonzero(mean_y >= target)
            entry["labels_to_target_mean_curve"] = int(mean_x[reached[0]]) if reached.size else None
            per_seed = []
            for x, y in curves:
                hit = np.flatnonzero(y >= target)
                per_seed.append(int(x[hit[0]]) if hit.size else None)
            entry["labels_to_target_per_seed"] = per_seed
        summary["arms"][arm] = entry
    random = summary["arms"].get("random")
    if random:
        random_auc = dict(zip(random["seeds"], random["auc_per_seed"], strict=True))
        for arm, entry in summary["arms"].items():
            if arm in STRATEGY_ARMS or arm == "best":
                pairs = [
                    (s, a - random_auc[s])
                    for s, a in zip(entry["seeds"], entry["auc_per_seed"], strict=True)
                    if s in random_auc
                ]
                entry["auc_minus_random_per_seed"] = dict(pairs)
    return summary


def markdown(summary: dict, pool: int, meta: dict) -> str:
    lines = [
        f"ATIS, all-MiniLM-L6-v2, CPU; pool {pool} training samples, {meta.get('test_count', '?')} test samples; "
        f"seeds {meta.get('seeds')}; recorded {meta.get('date')}; total wall time {meta.get('wall_hours', 0):.2f} h."
    ]
    if "full_accuracy_mean" in summary:
        source = f" (full arm of {meta['full_from']})" if meta.get("full_from") else ""
        lines.append(
            f"\nFull-data accuracy{source}: {100 * summary['full_accuracy_mean']:.2f} % "
            f"(± {100 * summary['full_accuracy_std']:.2f}); target (within 0.5 points): "
            f"{100 * summary['target_accuracy']:.2f} %.\n"
        )
    lines.append(
        "| arm | labels to target (mean curve) | per seed | AUC (mean acc. over its range) | final labels | final accuracy |"
    )
    lines.append("|---|---|---|---|---|---|")
    for arm, e in summary["arms"].items():
        reach = e.get("labels_to_target_mean_curve")
        reach_text = f"{reach} ({100 * reach / pool:.1f} %)" if reach else "not reached"
        per_seed = ", ".join(str(v) if v else "—" for v in e.get("labels_to_target_per_seed", []))
        lines.append(
            f"| {arm} | {reach_text} | {per_seed} | {100 * e['auc']:.2f} "
            f"(± {100 * np.std(e['auc_per_seed']):.2f}) | {int(e['labelled'][-1])} ({100 * e['labelled_fraction'][-1]:.1f} %) "
            f"| {100 * e['accuracy_mean'][-1]:.2f} ± {100 * e['accuracy_std'][-1]:.2f} % |"
        )
    paired = {
        arm: e["auc_minus_random_per_seed"] for arm, e in summary["arms"].items() if e.get("auc_minus_random_per_seed")
    }
    if paired:
        lines.append("\nAUC minus random's AUC on the same seed (points; seed: difference):\n")
        for arm, diffs in paired.items():
            wins = sum(d > 0 for d in diffs.values())
            lines.append(
                f"- {arm}: "
                + ", ".join(f"{s}: {100 * d:+.2f}" for s, d in diffs.items())
                + f" (mean {100 * np.mean(list(diffs.values())):+.2f}; above random on {wins} of {len(diffs)} seeds)"
            )
    lines.append("\nLearning curves (mean over seeds, labels → accuracy %):\n")
    for arm, e in summary["arms"].items():
        points = ", ".join(f"{int(x)}→{100 * y:.2f}" for x, y in zip(e["labelled"], e["accuracy_mean"], strict=True))
        lines.append(f"- {arm}: {points}")
    return "\n".join(lines) + "\n"


def plot(
    summary: dict, path: pathlib.Path, title: str = "ATIS active learning, MiniLM-L6, mean ± sd over seeds"
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, e in summary["arms"].items():
        x = 100 * np.array(e["labelled_fraction"])
        y, s = 100 * np.array(e["accuracy_mean"]), 100 * np.array(e["accuracy_std"])
        ax.plot(x, y, marker="o", label=f"{arm} (AUC {100 * e['auc']:.1f})")
        ax.fill_between(x, y - s, y + s, alpha=0.15)
    if "full_accuracy_mean" in summary:
        full = 100 * summary["full_accuracy_mean"]
        ax.axhline(full, color="black", lw=1, label=f"full data {full:.2f}")
        ax.axhline(full - 100 * WITHIN, color="black", lw=1, ls="--", label="full − 0.5 pt")
    ax.set_xlabel("labelled samples (% of the pool)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- main


def load(path: pathlib.Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"results": [], "meta": {}}


def save(path: pathlib.Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def report(data: dict, out: pathlib.Path) -> None:
    if not data["results"]:
        print("no results yet")
        return
    full_from = data["meta"].get("full_from")
    full_results = load(ROOT / full_from)["results"] if full_from else []
    summary = summarise(data["results"], full_results)
    data["summary"] = summary
    pool = data["results"][0]["pool_size"]
    text = markdown(summary, pool, data["meta"])
    out.with_suffix(".md").write_text(text)
    plot(summary, out.with_suffix(".png"))
    save(out, data)
    print(text)


def run_arms(stack: Stack, args, data: dict, out: pathlib.Path, config=None) -> None:
    """Every (seed, arm) not yet in ``data``, each saved to ``out`` as it ends (a stopped benchmark
    resumes where it was). ``config`` builds the runs (``arm_config`` by default)."""
    done = {(r["arm"], r["seed"]) for r in data["results"]}
    for seed in args.seeds:
        for arm in args.arms:
            if (arm, seed) in done:
                log.info("skip arm=%s seed=%d (already recorded)", arm, seed)
                continue
            log.info("start arm=%s seed=%d", arm, seed)
            result = run_arm(stack, arm, seed, args, config)
            log.info("done arm=%s seed=%d wall=%.0fs final=%s", arm, seed, result["wall_seconds"], result["rounds"][-1])
            data["results"].append(result)
            data["meta"]["wall_hours"] = data["meta"].get("wall_hours", 0.0) + result["wall_seconds"] / 3600
            data["meta"]["seeds"] = sorted({r["seed"] for r in data["results"]})
            data["meta"]["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            save(out, data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS + STRATEGY_ARMS)
    parser.add_argument("--max-rounds", type=int, default=5, help="rounds of the best and random arms")
    parser.add_argument("--original-rounds", type=int, default=3, help="rounds of the original protocol (5, 15, 25 %%)")
    parser.add_argument("--best-seed", type=float, default=0.02, help="seed fraction of the best and random arms")
    parser.add_argument("--best-batch", type=float, default=0.02, help="batch fraction of the best and random arms")
    parser.add_argument(
        "--strategy-seed",
        choices=("diverse", "random"),
        default="diverse",
        help="initial set of the random and strategy arms (best always starts diverse)",
    )
    parser.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--epochs", type=int, default=10, help="max epochs per training (early stopping on)")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=600,
        help="optimizer steps per training at most (caps the big trainings; small ones end by epochs)",
    )
    parser.add_argument(
        "--min-steps",
        type=int,
        default=250,
        help="optimizer steps per training at least (small labelled sets get more epochs)",
    )
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N training rows (smoke runs)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "headline.json")
    parser.add_argument(
        "--full-from",
        type=pathlib.Path,
        help="take the full-data accuracy (the target) from this results file's full arm",
    )
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    for noisy in ("services", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = load(args.out)
    if args.full_from:
        full_from = args.full_from.resolve()
        data["meta"]["full_from"] = str(full_from.relative_to(ROOT) if full_from.is_relative_to(ROOT) else full_from)
    if args.report_only:
        report(data, args.out)
        return 0
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "report_only", "seeds", "arms", "full_from")}
    recorded = data["meta"].get("settings")
    if recorded is not None:
        recorded.setdefault("strategy_seed", "random")  # recorded before the option existed
    if recorded not in (None, settings):
        raise SystemExit(f"{args.out} holds results of other settings {data['meta']['settings']}; use another --out")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="headline-") as tmp:
        workdir = pathlib.Path(tmp)
        stack = Stack(workdir, args.threads)
        try:
            counts = import_atis(stack, workdir, args.limit)
            data["meta"].update(
                settings=settings,
                test_count=counts["test"],
                machine=platform.platform(),
                cpus=os.cpu_count(),
                command="python bench/headline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            )
            run_arms(stack, args, data, args.out)
        finally:
            stack.stop()
    log.info("benchmark wall time this invocation: %.1f min", (time.monotonic() - started) / 60)
    report(data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
