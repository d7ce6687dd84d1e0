"""Which round's model does a run keep? Regret of the kept-model rule against the best round.

Runs simulated active-learning runs on the real services in process (``bench/headline.py``'s
stack: pool on a temp SQLite, trainer, scorer, coordinator, the bundled all-MiniLM-L6-v2 on CPU)
for each dataset, seed and strategy, and reads every round's test accuracy, validation metrics
and paired comparison. The test split only scores the rule, it never decides anything:

- ``kept``: the round the run keeps now (``lesslabels.contract.kept_round``, the rule the report,
  the web app, the scorer's ``best_of_run`` and OIP ``best`` share);
- ``old``: the rule before issue 31 (the latest validated round unless an earlier one's
  validation accuracy, each measured on its own held-out slice, leads by more than two standard
  errors), recomputed here from the same rounds;
- ``best``: the round with the highest test accuracy (the oracle).

Regret = best's test accuracy - the kept round's, in points. Target (issue 31): <= 0.5 on every
run and 0 on the mean.

Datasets: ATIS (headerless ``label,text``; 8 intents) and CLINC150 (``label,text`` header,
150 intents), read from ``../shared/data`` (``--data``). CLINC150's dev split is not imported
unless ``--dev``, so that both data sets validate on held-out labels, the case the rule is for.

    python bench/kept_model.py --datasets atis --seeds 0 1 2          # ATIS, three strategies
    python bench/kept_model.py --report-only                            # redo the table from the JSON

Results are appended to the JSON after each run (a restarted benchmark skips what is there).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
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

from bench.headline import Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data"
STRATEGIES = ("clustered-entropy", "entropy", "random")
#: file names per dataset and split (the pool tells a header row from a headerless label,text file)
FILES = {
    "atis": {"train": "atis_intents_train.csv", "test": "atis_intents_test.csv"},
    "clinc150": {"train": "train.csv", "test": "test.csv", "dev": "dev.csv"},
}

log = logging.getLogger("kept_model")


def import_dataset(stack: Stack, name: str, data: pathlib.Path, dev: bool) -> dict:
    from lesslabels.client import PoolClient

    counts = {}
    with PoolClient(stack.pool_address) as pool:
        for split, file in FILES[name].items():
            if split == "dev" and not dev:
                continue
            # CLINC150's files have a label,text header (read by name); ATIS's are headerless label,text.
            columns = {"text_column": "text", "label_column": "label"} if name == "clinc150" else {"format": "csv"}
            summary = pool.import_file(data / name / file, name, split=split, timeout=600, **columns)
            counts[split] = summary.imported
    return counts


def run_config(dataset: str, strategy: str, seed: int, args):
    from lesslabels.v1 import common_pb2, run_pb2

    config = run_pb2.RunConfig(
        dataset=dataset,
        name=f"kept-{dataset}-{strategy}-seed{seed}",
        random_seed=seed,
        strategy=run_pb2.Strategy.Value("STRATEGY_" + strategy.upper().replace("-", "_")),  # type: ignore[arg-type]  # Value() is typed int
        hyperparameters=common_pb2.Hyperparameters(
            max_length=args.max_length, num_threads=args.threads, min_steps_per_class=args.min_steps_per_class
        ),
    )
    config.seed_size.fraction = args.seed_fraction
    config.batch_size.fraction = args.batch_fraction
    config.stopping.max_rounds = args.rounds
    return config


def run_one(stack: Stack, dataset: str, strategy: str, seed: int, args) -> dict:
    from lesslabels.client import CoordinatorClient

    started = time.monotonic()
    with CoordinatorClient(stack.coordinator_address, timeout=60) as coordinator:
        run = coordinator.start_run(run_config(dataset, strategy, seed, args))
        for event in coordinator.watch(run.id):
            if event.message and "test accuracy" in event.message:
                log.info("%s %s seed=%d %s", dataset, strategy, seed, event.message)
        detail = coordinator.get_run(run.id)
    if detail.run.state != "COMPLETED":
        raise RuntimeError(
            f"{dataset} {strategy} seed {seed}: run {run.id} ended {detail.run.state}: {detail.run.error}"
        )
    return {
        "dataset": dataset,
        "strategy": strategy,
        "seed": seed,
        "wall_seconds": round(time.monotonic() - started, 1),
        "rounds": [
            {
                "round": r.index,
                "labelled": r.labelled_count,
                "checkpoint_id": r.checkpoint_id,
                "test_accuracy": r.test.accuracy if r.test else None,
                "validation_accuracy": r.validation.accuracy if r.validation else None,
                "validation_count": r.validation.count if r.validation else 0,
                "comparison": r.comparison.as_dict() if r.comparison else None,
            }
            for r in detail.rounds
        ],
    }


# ---------------------------------------------------------------- the rules, from recorded rounds


def old_rule(rounds: list[dict]) -> dict:
    """The rule before issue 31 (common/best.py at 072c390): the latest validated round unless the
    round with the highest validation accuracy leads it by more than two standard errors."""

    def variance(acc: float, n: int) -> float:
        if n <= 0:
            return 0.0
        p = (acc * n + 0.5) / (n + 1)
        return p * (1 - p) / n

    scored = [r for r in rounds if r["validation_count"]]
    if not scored:
        return rounds[-1]
    latest = max(scored, key=lambda r: r["round"])
    best = max(scored, key=lambda r: (r["validation_accuracy"], r["round"]))
    margin = 2.0 * math.sqrt(
        variance(latest["validation_accuracy"], latest["validation_count"])
        + variance(best["validation_accuracy"], best["validation_count"])
    )
    return best if best["validation_accuracy"] - latest["validation_accuracy"] > margin else latest


def new_rule(rounds: list[dict]) -> dict:
    """The product's rule (``kept_round``) on the recorded rounds."""
    from lesslabels.contract import Comparison, Metrics, Round, kept_round

    as_rounds = [
        Round(
            run_id=1,
            index=r["round"],
            checkpoint_id=r["checkpoint_id"],
            validation=Metrics(accuracy=r["validation_accuracy"], count=r["validation_count"])
            if r["validation_count"]
            else None,
            comparison=Comparison.from_dict(r["comparison"]),
        )
        for r in rounds
    ]
    kept = kept_round(as_rounds)
    assert kept is not None
    return next(r for r in rounds if r["round"] == kept.index)


def replayed_exactly(rounds: list[dict]) -> bool:
    """Does each recorded comparison name the model today's rule keeps before that round? The trainer
    compared each new model with the model the rule of its day kept; where today's rule would have
    kept another one, later comparisons would differ and the recomputed ``kept`` is approximate."""
    for i, r in enumerate(rounds[1:], start=1):
        if r["comparison"] and r["comparison"]["against"] != new_rule(rounds[:i])["checkpoint_id"]:
            return False
    return True


def score(result: dict) -> dict:
    rounds = result["rounds"]
    best = max(r["test_accuracy"] for r in rounds)
    kept, old = new_rule(rounds), old_rule(rounds)
    return {
        "exact": replayed_exactly(rounds),
        "kept_round": kept["round"],
        "old_round": old["round"],
        "best_rounds": [r["round"] for r in rounds if r["test_accuracy"] == best],
        "regret": round(100 * (best - kept["test_accuracy"]), 2),
        "old_regret": round(100 * (best - old["test_accuracy"]), 2),
    }


def markdown(data: dict) -> str:
    lines = [
        "| dataset | strategy | seed | test accuracy by round (%) | best | kept | regret (pt) | old rule kept | old regret (pt) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    regrets: dict[str, list[float]] = {}
    old: dict[str, list[float]] = {}
    for result in data["results"]:
        s = score(result)
        curve = " / ".join(f"{100 * r['test_accuracy']:.2f}" for r in result["rounds"])
        lines.append(
            f"| {result['dataset']} | {result['strategy']} | {result['seed']} | {curve} | "
            f"{','.join(map(str, s['best_rounds']))} | {s['kept_round']}{'' if s['exact'] else ' *'} | {s['regret']:.2f} | "
            f"{s['old_round']} | {s['old_regret']:.2f} |"
        )
        regrets.setdefault(result["dataset"], []).append(s["regret"])
        old.setdefault(result["dataset"], []).append(s["old_regret"])
    lines.append("")
    if not all(score(result)["exact"] for result in data["results"]):
        lines.append(
            "- \\* a comparison in this run was made against a model today's rule would not have kept: recomputed, approximate"
        )
    for name in regrets:
        r, o = regrets[name], old[name]
        lines.append(
            f"- {name}: {len(r)} runs; regret mean {sum(r) / len(r):.2f}, max {max(r):.2f} points "
            f"(old rule: mean {sum(o) / len(o):.2f}, max {max(o):.2f}); runs over 0.5 points: "
            f"{sum(x > 0.5 for x in r)} (old rule {sum(x > 0.5 for x in o)})"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(FILES), choices=list(FILES))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed-fraction", type=float, default=0.02)
    parser.add_argument("--batch-fraction", type=float, default=0.02)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--min-steps-per-class",
        type=int,
        default=0,
        help="the trainer's min_steps_per_class (0 = its default, 8); fewer makes 150-class rounds affordable",
    )
    parser.add_argument("--dev", action="store_true", help="import CLINC150's dev split (validation on it)")
    parser.add_argument("--data", type=pathlib.Path, default=DATA)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "kept_model.json")
    parser.add_argument(
        "--runtime",
        default="torch",
        choices=["torch", "onnx"],
        help="the scorer's runtime (onnx: the trainer publishes ONNX graphs, the scorer serves int8 where checked)",
    )
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data = json.loads(args.out.read_text()) if args.out.exists() else {"results": []}
    if not args.report_only:
        data["meta"] = {
            "recorded": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "settings": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()},
        }
        for dataset in args.datasets:
            todo = [
                (strategy, seed)
                for seed in args.seeds
                for strategy in args.strategies
                if not any(
                    (r["dataset"], r["strategy"], r["seed"]) == (dataset, strategy, seed) for r in data["results"]
                )
            ]
            if not todo:
                continue
            with tempfile.TemporaryDirectory(prefix="kept-model-") as tmp:
                stack = Stack(pathlib.Path(tmp), args.threads, args.runtime)
                try:
                    log.info("imported %s: %s", dataset, import_dataset(stack, dataset, args.data, args.dev))
                    for strategy, seed in todo:
                        data["results"].append(run_one(stack, dataset, strategy, seed, args))
                        args.out.write_text(json.dumps(data, indent=1))
                        log.info("%s", score(data["results"][-1]))
                finally:
                    stack.stop()
    table = markdown(data)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
