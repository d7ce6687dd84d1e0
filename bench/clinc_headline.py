"""The CLINC150 headline: active learning with many classes (150 intents, 15,000 training texts).

Runs the real services in process (the stack of bench/headline.py: pool on a temp SQLite,
trainer, scorer, coordinator on CPU) with the bundled all-MiniLM-L6-v2 and the trainer's default
recipe (bench/README.md, "Many classes"), and for every seed:

  full    one round on every training label (``--full-epochs`` passes): the accuracy to approach
  best    diverse seed set, then ``--best-strategy`` batches (default clustered entropy)
  random  random batches on exactly the schedule and initial set of ``best``

Schedule: ``--seed-size`` of the pool first (2 %), ``--batch`` more per round (6 %), ``--rounds``
rounds (4: 2, 8, 14, 20 %; the recorded results; ``--rounds 10 --batch 0.02`` is the demo's +2 %
rounds, about twice the hours). Curves are test-split accuracy (the final reading only: no choice
is made on it). Results are appended to the JSON file after each run (a restarted benchmark
skips what is already there), then summarised against the issue's targets: the largest fall of
a mean curve between rounds (target at most 0.5 points), the gap to full-data accuracy at 10 %
of the labels (target at most 3 points), best minus random on the area under the curve
(target above 0).

    python bench/clinc_headline.py                                   # the headline (hours: bench/README.md)
    python bench/clinc_headline.py --seeds 0 --limit 600 --rounds 2 --full-epochs 1 --min-steps 10 \\
        --min-steps-per-class 1 --threads 1 --out /tmp/clinc_smoke.json   # a smoke run (minutes)
    python bench/clinc_headline.py --report-only                     # redo table + plot from the JSON
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import logging
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "clinc150"
RESULTS = ROOT / "bench" / "results"
ARMS = ("full", "best", "random")
DATASET = "clinc150"
MAX_FALL = 0.005  # targets: the mean curve falls by at most 0.5 points between rounds,
GAP_AT = 0.10  # and at 10 % of the labels
MAX_GAP = 0.03  # it is within 3 points of full-data accuracy

log = logging.getLogger("clinc_headline")


def _headline():
    """bench/headline.py as a module (bench/ is not a package): its stack, run loop and AUC."""
    spec = importlib.util.spec_from_file_location("headline_bench", ROOT / "bench" / "headline.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {ROOT / 'bench' / 'headline.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- arms


def arm_config(arm: str, seed: int, args):
    from lesslabels.contract import wire
    from lesslabels.v1 import common_pb2, run_pb2

    # Zero fields are the trainer's defaults: the recipe under test.
    hyper = common_pb2.Hyperparameters(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        min_steps=args.min_steps,
        max_length=64,
        num_threads=args.threads,
        min_steps_per_class=args.min_steps_per_class,
    )
    config = run_pb2.RunConfig(dataset=DATASET, name=f"clinc-{arm}-seed{seed}", random_seed=seed, hyperparameters=hyper)
    if arm == "full":
        config.seed_size.fraction = 1.0
        config.stopping.max_rounds = 1
        config.hyperparameters.max_epochs = args.full_epochs
    elif arm in ("best", "random"):
        name = args.best_strategy if arm == "best" else "random"
        key = name.lower().replace("-", "_")
        if key not in wire.STRATEGY_TO_PROTO:
            raise SystemExit(f"unknown strategy {name!r}; choose from {', '.join(wire.STRATEGY_TO_PROTO)}")
        config.strategy = wire.STRATEGY_TO_PROTO[key]
        config.seed_strategy = run_pb2.SEED_STRATEGY_DIVERSE
        config.seed_size.fraction = args.seed_size
        config.batch_size.fraction = args.batch
        config.stopping.max_rounds = args.rounds
    else:
        raise SystemExit(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    return config


def import_clinc(stack, workdir: pathlib.Path, limit: int) -> dict:
    """Train and test splits into the pool as ``clinc150``. ``limit`` (smoke runs): a random
    ``limit`` training rows and ``limit // 5`` test rows (seeded, so every class can appear)."""
    from lesslabels.client import PoolClient

    counts = {}
    with PoolClient(stack.pool_address) as pool:
        for split in ("train", "test"):
            path = DATA / f"{split}.csv"
            if limit:
                with open(path, newline="", encoding="utf-8") as f:
                    header, *rows = list(csv.reader(f))
                keep = limit if split == "train" else max(limit // 5, 150)
                order = np.random.default_rng(0).permutation(len(rows))[:keep]
                path = workdir / f"{split}.csv"
                with open(path, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerows([header] + [rows[i] for i in sorted(order)])
            counts[split] = pool.import_file(path, DATASET, split=split, format="csv-header").imported
    return counts


# ---------------------------------------------------------------- summary against the targets


def largest_fall(y: np.ndarray) -> float:
    """The largest drop of a curve from one round to the next (0 when it never falls)."""
    if y.size < 2:
        return 0.0
    return float(max(0.0, -np.diff(y).min()))


def accuracy_at(fraction: float, x_fraction: np.ndarray, y: np.ndarray) -> float | None:
    """Accuracy at ``fraction`` of the labels, linear between rounds; None outside the curve."""
    if x_fraction.size == 0 or fraction < x_fraction[0] - 1e-9 or fraction > x_fraction[-1] + 1e-9:
        return None
    return float(np.interp(fraction, x_fraction, y))


def targets(summary: dict) -> dict:
    """The issue's three targets read off a summary of bench/headline.py's ``summarise``."""
    out: dict = {"arms": {}}
    full = summary.get("full_accuracy_mean")
    for arm, entry in summary["arms"].items():
        y = np.array(entry["accuracy_mean"])
        x = np.array(entry["labelled_fraction"])
        at = accuracy_at(GAP_AT, x, y)
        fall = largest_fall(y)
        gap = (full - at) if (full is not None and at is not None) else None
        out["arms"][arm] = {
            "largest_fall": fall,
            "accuracy_at_10pct": at,
            "gap_to_full_at_10pct": gap,
            "falls_ok": fall <= MAX_FALL,
            "gap_ok": None if gap is None else gap <= MAX_GAP,
        }
    best, random = summary["arms"].get("best"), summary["arms"].get("random")
    if best and random:
        out["best_minus_random_auc"] = best["auc"] - random["auc"]
        out["best_above_random"] = out["best_minus_random_auc"] > 0
    return out


def targets_markdown(t: dict) -> str:
    lines = ["\nTargets (largest fall ≤ 0.5 points; at 10 % within 3 points of full data; best above random):\n"]
    for arm, row in t["arms"].items():
        gap = row["gap_to_full_at_10pct"]
        lines.append(
            f"- {arm}: largest fall {100 * row['largest_fall']:.2f} points "
            f"({'ok' if row['falls_ok'] else 'MISSED'}); at 10 %: "
            + ("not covered" if row["accuracy_at_10pct"] is None else f"{100 * row['accuracy_at_10pct']:.2f} %")
            + (
                ""
                if gap is None
                else f", {100 * gap:.2f} points below full data ({'ok' if row['gap_ok'] else 'MISSED'})"
            )
        )
    if "best_minus_random_auc" in t:
        lines.append(
            f"- best minus random AUC: {100 * t['best_minus_random_auc']:+.2f} points "
            f"({'ok' if t['best_above_random'] else 'MISSED'})"
        )
    return "\n".join(lines) + "\n"


def report(headline, data: dict, out: pathlib.Path) -> None:
    if not data["results"]:
        print("no results yet")
        return
    summary = headline.summarise(data["results"])
    data["summary"] = summary
    data["targets"] = targets(summary)
    pool = data["results"][0]["pool_size"]
    text = headline.markdown(summary, pool, data["meta"]).replace("ATIS,", "CLINC150,", 1)
    text += targets_markdown(data["targets"])
    out.with_suffix(".md").write_text(text)
    try:
        headline.plot(
            summary, out.with_suffix(".png"), title="CLINC150 active learning, MiniLM-L6, mean ± sd over seeds"
        )
    except ImportError:  # matplotlib is the plot extra
        log.warning("matplotlib missing: no plot")
    headline.save(out, data)
    print(text)


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--rounds", type=int, default=4, help="rounds of best and random [4: 2, 8, 14, 20 %%]")
    parser.add_argument("--seed-size", type=float, default=0.02, help="initial labelled fraction [0.02]")
    parser.add_argument("--batch", type=float, default=0.06, help="fraction labelled per round [0.06]")
    parser.add_argument(
        "--best-strategy",
        default="clustered-entropy",
        choices=("clustered-entropy", "clustered-margin", "entropy", "margin"),
    )
    parser.add_argument("--full-epochs", type=int, default=1, help="passes of the full-data arm [1]")
    parser.add_argument("--min-steps", type=int, default=250, help="as `lesslabels run` [250]")
    parser.add_argument(
        "--min-steps-per-class", type=int, default=0, help="0 = the trainer's default; smaller for smoke runs only"
    )
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="a random N training rows only (smoke runs)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "clinc_headline.json")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    headline = _headline()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = headline.load(args.out)
    if args.report_only:
        report(headline, data, args.out)
        return 0
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "report_only", "seeds", "arms")}
    if data["meta"].get("settings") not in (None, settings):
        raise SystemExit(f"{args.out} holds results of other settings {data['meta']['settings']}; use another --out")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clinc-headline-") as tmp:
        workdir = pathlib.Path(tmp)
        stack = headline.Stack(workdir, args.threads)
        try:
            counts = import_clinc(stack, workdir, args.limit)
            data["meta"].update(
                settings=settings,
                test_count=counts["test"],
                machine=platform.platform(),
                cpus=os.cpu_count(),
                command="python bench/clinc_headline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            )
            headline.run_arms(stack, args, data, args.out, config=arm_config)
        finally:
            stack.stop()
    log.info("benchmark wall time this invocation: %.1f min", (time.monotonic() - started) / 60)
    report(headline, data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
