"""One acquisition round at pool scale, and scoring over 1 scorer against 2 replicas.

Every service is a real ``python -m lesslabels <service>`` subprocess on loopback (the
``lesslabels`` that PYTHONPATH gives; the children get the same PYTHONPATH), so that each one's
peak resident memory can be read from /proc (VmHWM). Two parts:

1. **Round at scale** (a tiny random BERT, 2 layers of width 32, so that what is measured is the
   pool and the coordinator, not the model). For each N in ``--sizes``, a fresh pool (SQLite):
   import N synthetic short texts (4 classes, labelled, for the simulated oracle) as one streamed
   import, timed; then ``--add`` (10,000) new rows into it, timed; 200 test texts (not timed).
   The pool is restarted on the same file (so its VmHWM is the round's, not the import's), a
   trainer, a scorer (``--threads 1``) and a fresh coordinator are started, and one run of two
   rounds is driven through the coordinator: random seed set of ``--seed-size``, one
   acquisition of ``--batch`` by entropy over ``--candidates`` random unlabelled samples
   (``lesslabels run --candidates``), simulated oracle, round 1 trained and evaluated.
   Recorded: the run's wall time (both trainings included, 4 optimizer steps each), round 0's
   scoring-and-selection seconds, and the peak RSS of the coordinator and of the pool (at
   SERVING and after the run).
2. **Scoring throughput with the bundled all-MiniLM-L6-v2** (skip with ``--skip-minilm``): a
   MiniLM classifier checkpoint with a random head is published into a temporary store, a pool
   holds ``--minilm-texts`` texts, and two scorer processes with ``--threads 1`` ``--batch-workers 1``
   (one batch at a time on one torch thread each; OMP_NUM_THREADS=1 too) preload it. Timed, interleaved
   ``--repeats`` times: ``ScorePool`` of the whole pool on one scorer, and the same pool as two
   shards (``Shard(0, 2)``, ``Shard(1, 2)``: what the coordinator sends each replica) on the two
   scorers concurrently. Each scorer's CPU seconds over the call (/proc/<pid>/stat) divided by
   the wall time shows the cores it really used (about 1 each on a quiet machine), and the seconds
   its threads waited runnable for a CPU (/proc/<pid>/task/*/schedstat) whether it was starved.

Targets: coordinator peak RSS grows by less than 100 MB from N = 100k to 1M; 1M rows
imported in under 60 s; +10k rows into 1M in under 2 s; 2 replicas at least 1.8x one.

    .venv/bin/python bench/round_scale.py                 # 100k and 1M, MiniLM on 20,000 texts
    .venv/bin/python bench/round_scale.py --sizes 2000 20000 --minilm-texts 2000 \\
        --out /tmp/round_scale_smoke.json                                  # smoke run, minutes
    .venv/bin/python bench/round_scale.py --sizes --out /tmp/minilm.json  # MiniLM part only

Writes JSON to ``--out`` (default ``bench/results/round_scale.json``) and prints a table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any
from collections.abc import Iterator, Sequence

MiB = 1024 * 1024
LABELS = ("flight", "airfare", "ground_service", "airline")
CITIES = ("boston", "denver", "atlanta", "dallas", "seattle", "miami", "chicago", "phoenix", "newark")
TEST_ROWS = 200
ROOT = pathlib.Path(__file__).resolve().parent.parent

#: Keep every child to the threads it is given; no downloads.
CHILD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
}

TARGETS = {
    "coordinator_rss_growth_mb": 100.0,  # from N = 100k to N = 1M, less than
    "import_1m_seconds": 60.0,  # less than
    "add_10k_into_1m_seconds": 2.0,  # less than
    "replica_speedup": 1.8,  # at least
}


# ---------------------------------------------------------------- summary (pure, tested)


def summarise(rounds: Sequence[dict], scoring: dict | None) -> dict:
    """The issue's targets read from the results: each a dict with ``value``, ``target`` and
    ``met`` (None when the sizes needed were not run). The coordinator's growth is also given
    between the smallest and the largest N that ran, whatever they are."""
    by_n = {r["n"]: r for r in rounds}
    summary: dict = {}
    if rounds:
        small, large = min(by_n), max(by_n)
        summary["coordinator_rss_growth_smallest_to_largest_mb"] = {
            "from_n": small,
            "to_n": large,
            "value": round(by_n[large]["coordinator_peak_mb"] - by_n[small]["coordinator_peak_mb"], 1),
        }

    def target(name: str, value: float | None, at_least: bool = False) -> dict:
        limit = TARGETS[name]
        met = None if value is None else (value >= limit if at_least else value < limit)
        return {"value": value, "target": (">= " if at_least else "< ") + f"{limit:g}", "met": met}

    growth = None
    if 100_000 in by_n and 1_000_000 in by_n:
        growth = round(by_n[1_000_000]["coordinator_peak_mb"] - by_n[100_000]["coordinator_peak_mb"], 1)
    summary["coordinator_rss_growth_mb"] = target("coordinator_rss_growth_mb", growth)
    one_million = by_n.get(1_000_000)
    summary["import_1m_seconds"] = target("import_1m_seconds", one_million["import_seconds"] if one_million else None)
    add = one_million["add_seconds"] if one_million and one_million["add"] == 10_000 else None
    summary["add_10k_into_1m_seconds"] = target("add_10k_into_1m_seconds", add)
    speedup = None
    if scoring:
        speedup = round(scoring["two_replicas"]["texts_per_second"] / scoring["one_scorer"]["texts_per_second"], 3)
    summary["replica_speedup"] = target("replica_speedup", speedup, at_least=True)
    return summary


def best_rate(texts: int, seconds: Sequence[float]) -> float:
    """Texts per second of the fastest of repeated timings of the same work."""
    return round(texts / min(seconds), 1)


# ---------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM for process {pid}")


def _cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _runqueue_wait_seconds(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (schedstat, all threads):
    what tells a starved process from an idle one on a shared machine."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


class Service:
    """``python -m lesslabels <service>`` on a loopback port, logging to a file."""

    HEALTH_NAMES = {
        "pool": "lesslabels.v1.PoolService",
        "trainer": "lesslabels.v1.TrainerService",
        "scorer": "lesslabels.v1.ScorerService",
        "coordinator": "lesslabels.v1.CoordinatorService",
    }

    def __init__(self, name: str, workdir: pathlib.Path, *args: str, port: int | None = None):
        self.name = name
        self.port = port or _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = workdir / f"{name}-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LESSLABELS_")}
        env.update(CHILD_ENV)
        command = [sys.executable, "-m", "lesslabels", name, "--host", "127.0.0.1", "--port", str(self.port), *args]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.pid = self.process.pid

    def wait_serving(self, timeout: float = 300) -> Service:
        from lesslabels.common.channels import wait_until_serving

        try:
            wait_until_serving(self.address, service=self.HEALTH_NAMES[self.name], timeout=timeout)
        except Exception:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} at {self.address} did not start:\n{tail}") from None
        return self

    def peak_rss_mb(self) -> float:
        return _peak_rss_mb(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


@contextlib.contextmanager
def services() -> Iterator[list[Service]]:
    """Collects started services and stops them all on the way out."""
    started: list[Service] = []
    try:
        yield started
    finally:
        for service in reversed(started):
            service.stop()


# ---------------------------------------------------------------- data


def text_of(i: int) -> str:
    return f"{CITIES[i % 9]} to {CITIES[(i * 7 + 3) % 9]} {LABELS[i % 4].replace('_', ' ')} request {i}"


def csv_chunks(start: int, stop: int, rows_per_chunk: int = 20_000) -> Iterator[bytes]:
    """Headerless ``label,text`` CSV of rows start..stop-1, produced lazily."""
    for begin in range(start, stop, rows_per_chunk):
        end = min(stop, begin + rows_per_chunk)
        yield "".join(f"{LABELS[i % 4]},{text_of(i)}\n" for i in range(begin, end)).encode()


def _import(pool_address: str, dataset: str, start: int, stop: int, split: str = "train") -> tuple[float, Any]:
    from lesslabels.client import PoolClient

    with PoolClient(pool_address, timeout=60) as pool:
        started = time.perf_counter()
        summary = pool.import_chunks(dataset, csv_chunks(start, stop), split=split, format="csv", timeout=3600)
        return time.perf_counter() - started, summary


# ---------------------------------------------------------------- part 1: a round at scale


def round_at_scale(n: int, args, tiny_dir: pathlib.Path, workdir: pathlib.Path) -> dict:
    from lesslabels.client import CoordinatorClient
    from lesslabels.contract import Amount, Hyperparameters, RunConfig, StoppingRule

    database = f"sqlite:///{workdir / 'pool.db'}"
    checkpoints = workdir / "checkpoints"
    with services() as started:
        pool = Service("pool", workdir, "--database-url", database)
        started.append(pool)
        pool.wait_serving()
        import_seconds, _ = _import(pool.address, "big", 0, n)
        add_seconds, added = _import(pool.address, "big", n, n + args.add)
        _import(pool.address, "big", n + args.add, n + args.add + TEST_ROWS, split="test")
        pool_import_peak = pool.peak_rss_mb()
        pool.stop()
        started.remove(pool)
        print(f"  N={n}: import {import_seconds:.2f} s, +{args.add} {add_seconds:.2f} s", flush=True)

        pool = Service("pool", workdir, "--database-url", database, port=pool.port)
        started.append(pool)
        pool.wait_serving()
        common = ["--pool-address", pool.address, "--checkpoint-dir", str(checkpoints), "--model-dir", str(tiny_dir)]
        trainer = Service("trainer", workdir, *common, "--num-threads", "1")
        scorer = Service("scorer", workdir, *common, "--threads", "1")
        started += [trainer, scorer]
        trainer.wait_serving()
        scorer.wait_serving()
        coordinator = Service(
            "coordinator",
            workdir,
            "--pool-address",
            pool.address,
            "--trainer-address",
            trainer.address,
            "--scorer-address",
            scorer.address,
        )
        started.append(coordinator)
        coordinator.wait_serving()
        coordinator_serving, pool_serving = coordinator.peak_rss_mb(), pool.peak_rss_mb()

        config = RunConfig(
            dataset="big",
            base_model=str(tiny_dir),
            strategy="entropy",
            seed_strategy="random",
            seed_size=Amount(count=args.seed_size),
            batch_size=Amount(count=args.batch),
            stopping=StoppingRule(max_rounds=2),
            oracle="simulated",
            random_seed=0,
            candidates=args.candidates,
            hyperparameters=Hyperparameters(max_epochs=1, max_steps=4, batch_size=8, max_length=32, num_threads=1),
        )
        with CoordinatorClient(coordinator.address, timeout=60) as client:
            started_at = time.perf_counter()
            run = client.start_run(config)
            for _ in client.watch(run.id, window=60):
                pass
            run_seconds = time.perf_counter() - started_at
            detail = client.get_run(run.id)
        if detail.run.state != "COMPLETED":
            raise RuntimeError(f"N={n}: run ended {detail.run.state}: {detail.run}")
        round0 = next(r for r in detail.rounds if r.index == 0)
        return {
            "n": n,
            "import_seconds": round(import_seconds, 2),
            "add": args.add,
            "add_seconds": round(add_seconds, 2),
            "add_imported": added.imported,
            "add_duplicates": added.duplicate_rows,
            "pool_peak_mb_import": pool_import_peak,
            "candidates": args.candidates,
            "seed_size": args.seed_size,
            "batch": args.batch,
            "run_seconds": round(run_seconds, 2),
            "round0_train_seconds": round(round0.train_seconds, 2),
            "round0_score_select_seconds": round(round0.score_seconds, 2),
            "round0_selected": round0.selected_count,
            "labelled_after": detail.run.labelled_count,
            "coordinator_serving_mb": coordinator_serving,
            "coordinator_peak_mb": coordinator.peak_rss_mb(),
            "pool_serving_mb": pool_serving,
            "pool_peak_mb": pool.peak_rss_mb(),
        }


# ---------------------------------------------------------------- part 2: MiniLM, 1 scorer vs 2 replicas


def publish_minilm_classifier(store_dir: pathlib.Path) -> str:
    """The bundled MiniLM with a random 4-class head, published as the trainer would; returns its id."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lesslabels.common.checkpoints import CheckpointStore
    from lesslabels.modeling.models import default_model_path

    base = default_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    manifest: dict[str, Any] = {
        "run_id": 1,
        "labels": list(LABELS),
        "base_model": str(base),
        "hyperparameters": {"max_length": 64},
        "dataset": "minilm",
    }
    with CheckpointStore(store_dir).publish(manifest) as folder:
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return manifest["id"]


def _timed_score_pool(calls: list[tuple[Service, object]], pool: Service, checkpoint: str, expected: int) -> dict:
    """Run ``ScorePool`` calls (scorer, shard) concurrently; seconds, texts, and the cores each scorer
    and the pool (which streams the texts to them) used meanwhile."""
    from lesslabels.client import ScorerClient

    def one(scorer: Service, shard) -> int:
        with ScorerClient(scorer.address, timeout=60) as client:
            scores = client.score_pool(
                "minilm", checkpoint=checkpoint, include_all=True, probabilities=False, shard=shard, timeout=3600
            )
            return len(scores.sample_ids)

    cpu_before = [_cpu_seconds(s.pid) for s, _ in calls]
    wait_before = [_runqueue_wait_seconds(s.pid) for s, _ in calls]
    pool_before = _cpu_seconds(pool.pid)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as executor:
        counts = list(executor.map(lambda call: one(*call), calls))
    seconds = time.perf_counter() - started
    cores = [round((_cpu_seconds(s.pid) - b) / seconds, 2) for (s, _), b in zip(calls, cpu_before, strict=True)]
    pool_cores = round((_cpu_seconds(pool.pid) - pool_before) / seconds, 2)
    waits = [round(_runqueue_wait_seconds(s.pid) - b, 2) for (s, _), b in zip(calls, wait_before, strict=True)]
    if sum(counts) != expected:
        raise RuntimeError(f"scored {sum(counts)} texts, expected {expected}")
    return {
        "seconds": round(seconds, 3),
        "texts": sum(counts),
        "cores_used_per_scorer": cores,
        "cpu_wait_seconds_per_scorer": waits,
        "pool_cores_used": pool_cores,
    }


def scoring_throughput(args, workdir: pathlib.Path) -> dict:
    from lesslabels.contract.shards import Shard

    store = workdir / "checkpoints"
    checkpoint = publish_minilm_classifier(store)
    with services() as started:
        pool = Service("pool", workdir, "--database-url", f"sqlite:///{workdir / 'minilm.db'}")
        started.append(pool)
        pool.wait_serving()
        _import(pool.address, "minilm", 0, args.minilm_texts)
        common = ["--pool-address", pool.address, "--checkpoint-dir", str(store), "--preload", checkpoint]
        # --threads 1 --batch-workers 1: one batch scored at a time, torch on one thread (parallelism()).
        scorers = [Service("scorer", workdir, *common, "--threads", "1", "--batch-workers", "1") for _ in range(2)]
        started += scorers
        for scorer in scorers:
            scorer.wait_serving()
        a, b = scorers
        # A first pass on each scorer, untimed: every shape the batcher meets is seen once.
        _timed_score_pool([(a, None), (b, None)], pool, checkpoint, 2 * args.minilm_texts)
        one, two = [], []
        for repeat in range(args.repeats):
            one.append(_timed_score_pool([(a, None)], pool, checkpoint, args.minilm_texts))
            two.append(_timed_score_pool([(a, Shard(0, 2)), (b, Shard(1, 2))], pool, checkpoint, args.minilm_texts))
            print(f"  repeat {repeat}: 1 scorer {one[-1]['seconds']} s, 2 replicas {two[-1]['seconds']} s", flush=True)
    return {
        "texts": args.minilm_texts,
        "checkpoint": checkpoint,
        "scorer_flags": "--threads 1 --batch-workers 1 (torch threads 1), OMP_NUM_THREADS=1",
        "one_scorer": {"texts_per_second": best_rate(args.minilm_texts, [r["seconds"] for r in one]), "runs": one},
        "two_replicas": {"texts_per_second": best_rate(args.minilm_texts, [r["seconds"] for r in two]), "runs": two},
    }


# ---------------------------------------------------------------- report


def table(rounds: Sequence[dict], scoring: dict | None, summary: dict) -> str:
    lines: list[str] = []
    if rounds:
        lines += [
            "| N | import (s) | +add (s) | run of 2 rounds (s) | round 0 score+select (s) | "
            "coordinator peak MB (serving) | pool peak MB (serving) | pool peak MB, import |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for r in rounds:
        lines.append(
            f"| {r['n']:,} | {r['import_seconds']} | {r['add_seconds']} (+{r['add']:,}) | {r['run_seconds']} | "
            f"{r['round0_score_select_seconds']} | {r['coordinator_peak_mb']} ({r['coordinator_serving_mb']}) | "
            f"{r['pool_peak_mb']} ({r['pool_serving_mb']}) | {r['pool_peak_mb_import']} |"
        )
    if scoring:
        lines += [
            "",
            f"MiniLM ScorePool over {scoring['texts']:,} texts (best of {len(scoring['one_scorer']['runs'])}):",
            "",
            "| scorers | texts/s | cores used per scorer (each run) | s waiting for a CPU per scorer | pool cores |",
            "|---|---:|---|---|---|",
        ]
        for label, key in (("1 scorer, 1 thread", "one_scorer"), ("2 replicas, 1 thread each", "two_replicas")):
            cores = "; ".join(", ".join(str(c) for c in run["cores_used_per_scorer"]) for run in scoring[key]["runs"])
            pool_cores = "; ".join(str(run["pool_cores_used"]) for run in scoring[key]["runs"])
            waits = "; ".join(
                ", ".join(str(w) for w in run["cpu_wait_seconds_per_scorer"]) for run in scoring[key]["runs"]
            )
            rate = scoring[key]["texts_per_second"]
            lines.append(f"| {label} | {rate:,} | {cores} | {waits} | {pool_cores} |")
    lines += ["", "Targets:"]
    for name, entry in summary.items():
        if "target" in entry:
            met = {True: "met", False: "MISSED", None: "not measured (sizes not run)"}[entry["met"]]
            lines.append(f"- {name}: {entry['value']} (target {entry['target']}): {met}")
        else:
            lines.append(f"- {name} (N {entry['from_n']:,} -> {entry['to_n']:,}): {entry['value']} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="pool sizes N (none: skip the round part)"
    )
    parser.add_argument("--add", type=int, default=10_000, help="rows added into each pool, timed")
    parser.add_argument("--candidates", type=int, default=10_000, help="unlabelled samples the round scores")
    parser.add_argument("--seed-size", type=int, default=20)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--skip-minilm", action="store_true", help="leave out the MiniLM scoring part")
    parser.add_argument("--minilm-texts", type=int, default=20_000, help="texts in the MiniLM scoring pool")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per MiniLM configuration")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "round_scale.json"))
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from tests.tiny_model import save_tiny_bert

    rounds = []
    scoring = None
    with tempfile.TemporaryDirectory(prefix="round-scale-") as tmp:
        tiny_dir = save_tiny_bert(pathlib.Path(tmp) / "tiny-bert")
        for n in sorted(args.sizes):
            workdir = pathlib.Path(tmp) / f"n{n}"
            workdir.mkdir()
            rounds.append(round_at_scale(n, args, tiny_dir, workdir))
            print(json.dumps(rounds[-1]), flush=True)
        if not args.skip_minilm:
            workdir = pathlib.Path(tmp) / "minilm"
            workdir.mkdir()
            scoring = scoring_throughput(args, workdir)
    summary = summarise(rounds, scoring)
    result = {
        "recorded_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
        "rounds": rounds,
        "scoring": scoring,
        "summary": summary,
    }
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(rounds, scoring, summary))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
