"""The trainer on a busy machine: the demo's recipe, quiet and beside one CPU-bound neighbour.

Trains the bundled all-MiniLM-L6-v2 with the trainer's training loop (lesslabels.trainer.loop) and its default recipe as the demo
runs it (`lesslabels run`: min_steps 250, batch 16, max_length 64, validation held out as the
trainer does) on a random 2 % of ATIS train (the demo's first round), capped at ``--steps``
steps so every trial does the same work. Thread choices:

  fixed-N   torch.set_num_threads(N) for the whole job (fixed-<all CPUs> was the old default)
  auto      the trainer's default now: lesslabels.trainer.threads.ThreadGovernor (free CPUs,
            re-read every 5 s while training)

Each choice runs quiet and beside a neighbour (another process spinning on one core: `while True:
pass`), interleaved: for each repetition, quiet then busy, every choice. samples/s = training
samples / wall seconds of the whole train call (tokenising, head initialisation and every
epoch's validation included). Also, quiet, the original notebook's loop (bench/train_bench.py's
reference: HF model, batch 32 in file order, AdamW) for the same number of samples. Results go to
bench/results/contention_bench.json.

    python bench/contention_bench.py                          # ~10 minutes on 2 cores; run it alone
    python bench/contention_bench.py --steps 10 --reps 1 --out /tmp/contention.json   # smoke run
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import time
import types

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "atis"
NEIGHBOUR = "while True: pass"


def read_rows(path: pathlib.Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(label, text.strip()) for label, text in csv.reader(f)]


def demo_round(rows, fraction: float, seed: int):
    """A random ``fraction`` of the rows as the trainer's (train, validation) examples."""
    import numpy as np

    from lesslabels.contract import Hyperparameters

    from lesslabels.trainer.loop import Example, validation_split

    picked = np.random.default_rng(seed).permutation(len(rows))[: max(2, round(fraction * len(rows)))]
    examples = [Example(int(i), rows[i][1], rows[i][0]) for i in sorted(picked)]
    return validation_split(examples, Hyperparameters(), seed)


class Neighbour:
    """One CPU-bound process for the span of a ``with`` block (none when ``busy`` is false)."""

    def __init__(self, busy: bool):
        self.busy = busy
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        if self.busy:
            self.process = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
            time.sleep(1.0)  # let it take its core
        return self

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        return False


def engine_trial(choice: str, labels, train_set, validation_set, args) -> dict:
    import torch

    from lesslabels.modeling.models import load_classifier, select_device
    from lesslabels.contract import Hyperparameters
    from lesslabels.trainer.loop import train
    from lesslabels.trainer.threads import ThreadGovernor

    fixed = 0 if choice == "auto" else int(choice.split("-")[1])
    previous = torch.get_num_threads()
    governor = ThreadGovernor(fixed)
    classifier = load_classifier("default", labels)
    config = Hyperparameters(
        learning_rate=1e-4, batch_size=16, min_steps=min(250, args.steps), max_steps=args.steps, max_length=64
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        governor.start()
        outcome = train(
            classifier.model,
            classifier.tokenizer,
            labels,
            train_set,
            validation_set,
            config,
            seed=args.seed,
            device=select_device("cpu"),
            between_steps=governor.tick,
        )
    finally:
        torch.set_num_threads(previous)
    seconds = time.perf_counter() - started
    return {
        "samples": outcome.samples_seen,
        "steps": outcome.steps,
        "epochs": outcome.epochs_run,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu_started,
        "samples_per_second": outcome.samples_seen / seconds,
        "threads_used": governor.changes,
    }


def reference_trial(labels, rows, samples: int, args) -> dict:
    """The notebook's loop (bench/train_bench.py) on the same rows, as many samples, quiet."""
    spec = importlib.util.spec_from_file_location("train_bench", ROOT / "bench" / "train_bench.py")
    assert spec is not None and spec.loader is not None
    train_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_bench)
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # what a notebook gets: torch's default, every core
    epochs = math.ceil(samples / len(rows))
    loop = train_bench.ReferenceLoop(
        types.SimpleNamespace(seed=args.seed, lr=1e-4, batch_size=32, epochs=epochs, max_length=64), labels, rows
    )
    done = 0
    while done < samples and loop.step():
        done += min(32, len(rows))
    return {"samples": done, "seconds": loop.seconds, "samples_per_second": done / loop.seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cpus = len(os.sched_getaffinity(0))
    parser.add_argument("--choices", nargs="+", default=[f"fixed-{cpus}", "fixed-1", "auto"])
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per trial (batch 16) [100]")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.02, help="labelled fraction of ATIS train [0.02]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results" / "contention_bench.json")
    args = parser.parse_args(argv)

    import torch

    rows = read_rows(DATA / "atis_intents_train.csv")
    train_set, validation_set = demo_round(rows, args.fraction, args.seed)
    labels = sorted({label for label, _ in rows})
    trials = []
    for rep in range(args.reps):
        for busy in (False, True):
            for choice in args.choices:
                with Neighbour(busy):
                    trial = engine_trial(choice, labels, train_set, validation_set, args)
                trial.update(rep=rep, condition="neighbour" if busy else "quiet", choice=choice)
                print(json.dumps(trial), flush=True)
                trials.append(trial)
    labelled = [(e.label, e.text) for e in [*train_set, *validation_set]]
    reference = reference_trial(labels, labelled, args.steps * 16, args)
    print("reference", json.dumps(reference), flush=True)

    summary: dict = {}
    for choice in args.choices:
        rates = {
            condition: [
                t["samples_per_second"] for t in trials if t["choice"] == choice and t["condition"] == condition
            ]
            for condition in ("quiet", "neighbour")
        }
        quiet = sum(rates["quiet"]) / len(rates["quiet"])
        busy = sum(rates["neighbour"]) / len(rates["neighbour"])
        summary[choice] = {"quiet": quiet, "neighbour": busy, "neighbour_over_quiet": busy / quiet}
    best_quiet = max(s["quiet"] for s in summary.values())
    for s in summary.values():
        s["neighbour_over_best_quiet"] = s["neighbour"] / best_quiet
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/contention_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()}, {cpus} usable CPUs, torch {torch.__version__}",
        "train_samples": len(train_set),
        "validation_samples": len(validation_set),
        "trials": trials,
        "reference_quiet": reference,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        "\n| threads | quiet samples/s | beside a neighbour | neighbour / quiet | neighbour / best quiet |\n|---|---|---|---|---|"
    )
    for choice, s in summary.items():
        print(
            f"| {choice} | {s['quiet']:.1f} | {s['neighbour']:.1f} | {s['neighbour_over_quiet']:.2f} "
            f"| {s['neighbour_over_best_quiet']:.2f} |"
        )
    print(f"| notebook loop (quiet, batch 32, every core) | {reference['samples_per_second']:.1f} | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
