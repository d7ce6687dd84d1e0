"""Many classes through the CLI, as a user runs it, with every default.

The headlines drive the services from Python; this script types what a user types. It takes a
random ``--classes`` of CLINC150's 150 intents (train and test texts of those intents, seeded),
writes them as two CSV files, then runs, each as its own process and in this order:

    lesslabels up --state-dir STATE --no-web --*-port=0         (until the end)
    lesslabels import train.csv --dataset DS
    lesslabels import test.csv --dataset DS --split test
    lesslabels run --dataset DS --seed-size 100% --max-rounds 1 --epochs 1 --watch     (full data)
    lesslabels report RUN --format json
    lesslabels compare --dataset DS --strategies clustered-entropy,random --seeds S \
                       --max-rounds R --reference FULL --json OUT --plot PNG

No training or strategy flag is passed: `run`'s recommended protocol (a diverse 2 % seed set,
clustered entropy, +2 % of the pool per round) and the trainer's defaults are what is measured.
Every command's output goes to the log; the summary JSON holds the full-data accuracy and
`compare`'s own JSON.

    python bench/cli_many_classes.py --classes 77 --rounds 4 --seeds 0 \\
        --out bench/results/cli_many_classes.json

Reads ``../shared/data/clinc150`` (or ``--data``). Works in a temporary folder; the JSON, log and
plot beside ``--out`` are replaced only when the whole run succeeded, and a failed run keeps its
folder and names it.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "clinc150"
DATASET = "clinc-subset"


def write_subset(data: pathlib.Path, classes: int, seed: int, folder: pathlib.Path) -> dict:
    """``classes`` intents drawn with ``random.Random(seed)``; their train and test rows as CSV."""
    with open(data / "train.csv", newline="", encoding="utf-8") as f:
        train = list(csv.DictReader(f))
    intents = sorted({row["label"] for row in train})
    if not 1 < classes <= len(intents):
        raise SystemExit(f"--classes {classes}: choose 2 to {len(intents)}")
    chosen = set(random.Random(seed).sample(intents, classes))
    counts = {}
    for split in ("train", "test"):
        with open(data / f"{split}.csv", newline="", encoding="utf-8") as f:
            rows = [row for row in csv.DictReader(f) if row["label"] in chosen]
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "text"])
            writer.writerows((row["label"], row["text"]) for row in rows)
        counts[split] = len(rows)
    return {"intents": sorted(chosen), **counts}


class Cli:
    """Runs ``lesslabels`` commands against one stack, each output line to the log."""

    def __init__(self, coordinator: str, pool: str, log):
        self.env = {
            **os.environ,
            "LESSLABELS_COORDINATOR_ADDRESS": coordinator,
            "LESSLABELS_POOL_ADDRESS": pool,
            "LESSLABELS_TIMEOUT": "120",
        }
        self.log = log

    def __call__(self, *args: str) -> str:
        command = ["lesslabels", *args]
        self.log.write(f"\n$ {' '.join(command)}   # {datetime.datetime.now(datetime.UTC):%H:%M:%S}\n")
        self.log.flush()
        done = subprocess.run(
            [sys.executable, "-m", "lesslabels.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
        )
        self.log.write(done.stdout + done.stderr)
        self.log.flush()
        if done.returncode != 0:
            raise SystemExit(f"`{' '.join(command)}` exited {done.returncode}:\n{done.stderr[-2000:]}")
        return done.stdout


def start_stack(state: pathlib.Path, log) -> tuple[subprocess.Popen, dict]:
    """``lesslabels up`` on ports it picks; the addresses are read from the export line it prints."""
    flags = ["--no-web", *(f"--{name}-port=0" for name in ("pool", "trainer", "scorer", "coordinator"))]
    up_log = state.parent / "up.log"
    with open(up_log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lesslabels.cli.main", "up", "--state-dir", str(state), *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(1)
        text = up_log.read_text(encoding="utf-8")
        if "ready" in text:
            log.write(f"$ lesslabels up --state-dir {state} {' '.join(flags)}\n{text}")
            exported = dict(re.findall(r"LESSLABELS_(\w+)_ADDRESS=(\S+)", text))
            return process, {"coordinator": exported["COORDINATOR"], "pool": exported["POOL"]}
        if process.poll() is not None:
            raise SystemExit(f"lesslabels up exited {process.returncode}:\n{text[-2000:]}")
    process.terminate()
    raise SystemExit("lesslabels up was not ready within 300 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=77, help="intents drawn from CLINC150 [77]")
    parser.add_argument("--subset-seed", type=int, default=0, help="seed of the intent draw [0]")
    parser.add_argument("--seeds", default="0", help="run seeds, comma-separated, as `compare --seeds` [0]")
    parser.add_argument("--rounds", type=int, default=4, help="`--max-rounds` of the compared runs [4]")
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA, help="CLINC150 folder (train/test.csv)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "cli_many_classes.json")
    args = parser.parse_args()

    started = time.time()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="lesslabels-cli-bench-"))
    # Everything is written in workdir and copied over the recorded files only when the whole run
    # succeeded: a bad flag or a failed run leaves the recorded log, plot and JSON as they were.
    try:
        subset = write_subset(args.data, args.classes, args.subset_seed, workdir)
    except SystemExit:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    try:
        result = measure(args, workdir, subset)
    except BaseException:
        print(f"the run failed; its files are in {workdir} (log: {workdir / 'run.log'})", file=sys.stderr)
        raise
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/cli_many_classes.py " + " ".join(sys.argv[1:]),
        "wall_minutes": round((time.time() - started) / 60, 1),
        "classes": args.classes,
        "subset": subset,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(workdir / "run.log", args.out.with_suffix(".log"))
    shutil.copyfile(workdir / "compare.png", args.out.with_suffix(".png"))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"full data {result['full_data']['accuracy']:.4f}; {args.out} and its .log, .png")
    return 0


def measure(args, workdir: pathlib.Path, subset: dict) -> dict:
    """The commands against one stack; every command and its output go to ``workdir/run.log``."""
    with open(workdir / "run.log", "w", encoding="utf-8") as log:
        log.write(f"{args.classes} intents (seed {args.subset_seed}): {subset['train']} train, {subset['test']} test\n")
        stack, addresses = start_stack(workdir / "state", log)
        try:
            cli = Cli(addresses["coordinator"], addresses["pool"], log)
            cli("import", str(workdir / "train.csv"), "--dataset", DATASET)
            cli("import", str(workdir / "test.csv"), "--dataset", DATASET, "--split", "test")
            full_flags = "--seed-size 100% --max-rounds 1 --epochs 1 --watch --no-progress".split()
            out = cli("run", "--dataset", DATASET, *full_flags)
            started_run = re.search(r"started run (\d+)", out)
            if started_run is None:
                raise SystemExit(f"`lesslabels run` printed no run id:\n{out[-2000:]}")
            full_run = started_run.group(1)
            full_rows = json.loads(cli("report", full_run, "--format", "json", "--no-plot"))["rounds"]
            full_accuracy = full_rows[-1]["accuracy"]
            compare_json = workdir / "compare.json"
            cli(
                "compare", "--dataset", DATASET, "--strategies", "clustered-entropy,random", "--seeds", args.seeds,
                "--max-rounds", str(args.rounds), "--reference", str(full_accuracy), "--no-progress",
                "--json", str(compare_json), "--plot", str(workdir / "compare.png"),
            )  # fmt: skip
        finally:
            stack.terminate()
            stack.wait(timeout=60)
    return {
        "full_data": {"run": int(full_run), "rows": full_rows, "accuracy": full_accuracy},
        "compare": json.loads(compare_json.read_text()),
    }


if __name__ == "__main__":
    raise SystemExit(main())
