"""How long a person waits for a text to label: a scripted annotator labels through the web app's own
HTTP API, asynchronous rounds against synchronous (batch) rounds, on ATIS and CLINC150.

For each dataset and mode the services and the web app start as local processes, as ``lesslabels up``
starts them (``LocalStack``: pool on SQLite, trainer, scorer, coordinator, web app, bundled
all-MiniLM-L6-v2, the trainer's default recipe), the training and test splits are imported, and a
human-oracle run starts (``--seed-size`` 40, ``--batch-size`` 20, entropy, random seed set, as the
issue's new user ran it). The annotator then behaves as the labelling page (``web/static/label.js``)
does: it loads ``GET /api/runs/ID/queue?annotator=NAME``, shows the texts of the queue one after
the other, spends ``--seconds-per-label`` on each (default 2 s) and posts the gold label with the
page's CSRF token (``POST /api/runs/ID/labels``), and loads the queue again when its texts are done;
while the queue is empty it asks again every ``--poll`` seconds (the page: every second). As the
page does, it also reads the queue in the background every ``QUEUE_POLL_S`` (4 s, label.js's
QUEUE_POLL_MS) while a text is on screen: texts gone from the queue leave, new ones join at the end
(``refreshQueue``), so the next text is usually on hand when Enter is pressed (``--no-background-poll``
leaves this out, as the benchmark did before 2026-12-07 13:10 UTC).

Per label it records:

  wait_s        time with nothing to label: from the first empty queue answer to the one with texts
  next_text_ms  from pressing Enter on the previous text (the label's POST) to the next text on
                screen: the POST, any queue requests, and any wait
  post_ms, fetch_ms   the label's POST, the queue requests it took (not the background reads,
                whose times are summarised apart)

and summarises them after the first batch (the seed set: ``--seed-size`` labels; before it no
model exists in either mode) against the issue's targets: no wait over 1 s, the next text within
200 ms at p95. After ``--labels`` labels the run is cancelled.

    python bench/annotator_wait.py                                   # both datasets, both modes (bench/README.md)
    python bench/annotator_wait.py --datasets atis --modes async --labels 40   # a quick look
    python bench/annotator_wait.py --limit 300 --labels 24 --seed-size 8 --batch-size 8 \\
        --seconds-per-label 0.3 --max-steps 20 --out /tmp/annotator_wait_smoke.json      # a smoke run
    python bench/annotator_wait.py --report-only

Results are saved after each (dataset, mode) (a restarted benchmark skips what is there), with a
markdown table beside the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import pathlib
import platform
import re
import shutil
import sys
import tempfile
import threading
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench import bench_data  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MODES = ("async", "sync")
ANNOTATOR = "bench-annotator"
#: How often the labelling page reads the queue in the background (web/static/label.js QUEUE_POLL_MS).
QUEUE_POLL_S = 4.0
#: The issue's targets, after the first batch.
MAX_WAIT_S = 1.0
P95_NEXT_TEXT_MS = 200.0


@dataclasses.dataclass
class Label:
    """One label as the annotator lived it."""

    index: int
    sample_id: int = 0
    wait_s: float = 0.0
    next_text_ms: float = 0.0
    post_ms: float = 0.0
    fetch_ms: list[float] = dataclasses.field(default_factory=list)
    queued: int = 0  # texts in the queue the text came from
    model: str = ""  # the model its suggestions came from
    correct_suggestion: bool | None = None
    run_step: str = ""


class Ended(Exception):
    """The run ended while the annotator waited."""


class Annotator:
    """The labelling page's loop, scripted (module docstring)."""

    def __init__(self, web: httpx.Client, run_id: int, gold: dict[str, str], args):
        self.web, self.run_id, self.gold, self.args = web, run_id, gold, args
        self.items: list[dict] = []
        self.queue: dict = {}
        self.csrf = ""
        self.unknown_texts = 0
        self.lock = threading.Lock()  # the page's `busy`: a background read never overlaps a POST or a load
        self.labelled: set[int] = set()
        self.background_ms: list[float] = []

    def refresh(self, client: httpx.Client) -> None:
        """label.js ``refreshQueue``: the queue as the server has it now. Texts on hand that left it
        (labelled or held by someone else) go, new ones join at the end."""
        started = time.perf_counter()
        reply = client.get(f"/api/runs/{self.run_id}/queue", params={"annotator": ANNOTATOR})
        self.background_ms.append(1000 * (time.perf_counter() - started))
        if reply.status_code != 200:
            return  # the next poll tries again
        fresh = reply.json()
        if fresh["run"]["ended"] or not self.queue:
            return
        if not fresh["run"]["asynchronous"] and fresh["round"] != self.queue["round"]:
            return
        waiting = [i for i in fresh["items"] if not i["label"]]
        there = {i["sample_id"] for i in waiting}
        with self.lock:
            if not self.items:
                return  # the page loads the queue itself when its texts are done
            self.items = [i for i in self.items if i["sample_id"] in there]
            known = {i["sample_id"] for i in self.items} | self.labelled
            self.items += [i for i in waiting if i["sample_id"] not in known]

    def poll(self, stop: threading.Event) -> None:
        with httpx.Client(base_url=str(self.web.base_url), timeout=120) as client:
            while not stop.wait(QUEUE_POLL_S):
                try:
                    self.refresh(client)
                except httpx.HTTPError:
                    pass  # as the page: the next poll tries again

    def token(self) -> str:
        page = self.web.get(f"/runs/{self.run_id}/label")
        found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        if found is None:
            raise SystemExit(f"no csrf-token on the labelling page (HTTP {page.status_code})")
        return found.group(1)

    def next_text(self, record: Label, deadline: float) -> dict:
        """The next text to label, loading the queue when the texts on hand are done and polling
        while it is empty; the queue requests and the wait go into ``record``."""
        with self.lock:
            return self._next_text(record, deadline)

    def _next_text(self, record: Label, deadline: float) -> dict:
        empty_since = None
        while not self.items:
            started = time.perf_counter()
            reply = self.web.get(f"/api/runs/{self.run_id}/queue", params={"annotator": ANNOTATOR})
            now = time.perf_counter()
            record.fetch_ms.append(1000 * (now - started))
            reply.raise_for_status()
            self.queue = reply.json()
            if self.queue["run"]["ended"]:
                raise Ended(self.queue["run"]["state"])
            self.items = [i for i in self.queue["items"] if not i["label"]]
            if self.items:
                if empty_since is not None:
                    record.wait_s = now - empty_since
                break
            if empty_since is None:
                empty_since = now
            if time.monotonic() > deadline:
                raise TimeoutError("the queue stayed empty past --max-minutes")
            time.sleep(self.args.poll)
        item = self.items.pop(0)
        record.queued = len(self.items) + 1
        record.model = self.queue.get("model", "")
        record.run_step = self.queue["run"]["step"]
        return item

    def label(self, item: dict, record: Label, nonce: str) -> int:
        gold = self.gold.get(bench_data.normalise(item["text"]))
        if gold is None:  # not a training text as imported: should not happen
            self.unknown_texts += 1
            gold = item["options"][0]["label"]
        record.sample_id = item["sample_id"]
        record.correct_suggestion = (item["suggestion"] == gold) if item["suggestion"] else None
        body = {"sample_id": item["sample_id"], "label": gold, "annotator": ANNOTATOR, "nonce": nonce}
        with self.lock:
            started = time.perf_counter()
            reply = self.web.post(f"/api/runs/{self.run_id}/labels", json=body, headers={"X-CSRF-Token": self.csrf})
            record.post_ms = 1000 * (time.perf_counter() - started)
            reply.raise_for_status()
            self.labelled.add(item["sample_id"])
            remaining = int(reply.json()["remaining"])
            if remaining == 0:
                self.items = []  # the page reloads the queue when the reply says nothing is left
        return remaining

    def run(self) -> list[Label]:
        stop = threading.Event()
        poller = threading.Thread(target=self.poll, args=(stop,), daemon=True)
        if self.args.background_poll:
            poller.start()
        try:
            return self._run()
        finally:
            stop.set()
            if poller.is_alive():
                poller.join(timeout=QUEUE_POLL_S + 130)

    def _run(self) -> list[Label]:
        self.csrf = self.token()
        deadline = time.monotonic() + 60 * self.args.max_minutes
        records: list[Label] = []
        pressed = time.perf_counter()  # Enter on the previous text; for the first, the run's start
        for index in range(self.args.labels):
            record = Label(index)
            try:
                item = self.next_text(record, deadline)
            except Ended:
                break
            on_screen = time.perf_counter()
            record.next_text_ms = 1000 * (on_screen - pressed)
            time.sleep(self.args.seconds_per_label)
            pressed = time.perf_counter()
            self.label(item, record, f"bench{index:08d}")
            records.append(record)
        return records


def run_config(dataset: str, mode: str, args):
    from lesslabels.client import Amount, RunConfig, StoppingRule
    from lesslabels.contract import Hyperparameters

    overrides = {
        k: v
        for k, v in (("num_threads", args.threads), ("max_steps", args.max_steps), ("max_epochs", args.max_epochs))
        if v
    }
    if args.max_steps:  # a smoke run: a few steps, whatever the recipe's minimum per class
        overrides.update(min_steps=0, min_steps_per_class=0)
    return RunConfig(
        dataset=dataset,
        name=f"annotator-wait-{mode}",
        oracle="human",
        asynchronous=mode == "async",
        refill_every=args.refill_every if mode == "async" else 0,
        seed_size=Amount(count=args.seed_size),
        batch_size=Amount(count=args.batch_size),
        stopping=StoppingRule(max_rounds=10_000),
        random_seed=args.seed,
        hyperparameters=Hyperparameters(**overrides),
    )


def measure(dataset: str, mode: str, args) -> dict:
    """One (dataset, mode): a fresh stack, the data, a run, the scripted annotator."""
    from lesslabels.cli.stack import LocalStack
    from lesslabels.client import CoordinatorClient

    env = {"LESSLABELS_LOG_LEVEL": "INFO" if args.log_dir else "WARNING"}
    if args.embedding_dir:
        env["LESSLABELS_EMBEDDING_DIR"] = str(args.embedding_dir.resolve())
    with tempfile.TemporaryDirectory(prefix="annotator-wait-") as tmp:
        workdir = pathlib.Path(tmp)
        with LocalStack(workdir / "state", web_port=0, env=env) as stack:
            counts = bench_data.import_dataset(stack.address("pool"), dataset, workdir, args.limit)
            started = time.monotonic()
            with CoordinatorClient(stack.address("coordinator"), timeout=60) as coordinator:
                run = coordinator.start_run(run_config(dataset, mode, args))
                with httpx.Client(base_url=stack.web_url.rstrip("/"), timeout=120) as web:
                    annotator = Annotator(web, run.id, bench_data.gold_labels(dataset), args)
                    try:
                        records = annotator.run()
                    finally:
                        detail = coordinator.get_run(run.id)
                        if detail.run.state not in ("COMPLETED", "FAILED", "CANCELLED"):
                            coordinator.cancel(run.id)
        if args.log_dir:  # the services' logs, for a look at what a wait was made of
            shutil.copytree(workdir / "state" / "logs", args.log_dir / f"{dataset}-{mode}", dirs_exist_ok=True)
    wall = time.monotonic() - started
    return {
        "dataset": dataset,
        "mode": mode,
        "run_id": run.id,
        "counts": counts,
        "wall_seconds": round(wall, 1),
        "unknown_texts": annotator.unknown_texts,
        "final_state": detail.run.state,
        "error": detail.run.error,
        "rounds": [
            {
                "round": r.index,
                "labelled": r.labelled_count,
                "accuracy": r.test.accuracy if r.test else None,
                "train_seconds": round(r.train_seconds, 1),
                "score_seconds": round(r.score_seconds, 1),
            }
            for r in detail.rounds
        ],
        "labels": [dataclasses.asdict(r) for r in records],
        "background_queue_ms": [round(ms, 1) for ms in annotator.background_ms],
    }


# ---------------------------------------------------------------- summary


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(result: dict, seed_size: int) -> dict:
    labels = result["labels"]
    first, after = labels[:seed_size], labels[seed_size:]
    waits = [r["wait_s"] for r in after]
    next_ms = [r["next_text_ms"] for r in after]
    fetches = [ms for r in after for ms in r["fetch_ms"]]
    posts = [r["post_ms"] for r in labels if r["post_ms"]]
    suggested = [r["correct_suggestion"] for r in after if r["correct_suggestion"] is not None]
    return {
        "labels": len(labels),
        "first_batch_labels": len(first),
        "first_batch_wait_s": round(sum(r["wait_s"] for r in first), 2),
        "first_text_s": round(labels[0]["next_text_ms"] / 1000, 2) if labels else None,
        "after_first_batch": {
            "labels": len(after),
            "total_wait_s": round(sum(waits), 2),
            "wait_s_p50": round(percentile(waits, 50), 3),
            "wait_s_p95": round(percentile(waits, 95), 3),
            "wait_s_max": round(max(waits), 3) if waits else None,
            "waits_over_1s": sum(w > MAX_WAIT_S for w in waits),
            "next_text_ms_p50": round(percentile(next_ms, 50), 1),
            "next_text_ms_p95": round(percentile(next_ms, 95), 1),
            "next_text_ms_max": round(max(next_ms), 1) if next_ms else None,
            "queue_request_ms_p50": round(percentile(fetches, 50), 1),
            "queue_request_ms_p95": round(percentile(fetches, 95), 1),
            "queue_requests": len(fetches),
            "suggestion_correct": round(float(np.mean(suggested)), 3) if suggested else None,
            "meets_wait_target": bool(waits) and max(waits) <= MAX_WAIT_S,
            "meets_next_text_target": bool(next_ms) and percentile(next_ms, 95) <= P95_NEXT_TEXT_MS,
        },
        "background_reads": len(result.get("background_queue_ms", [])),
        "background_read_ms_p95": round(percentile(result.get("background_queue_ms", []), 95), 1),
        "post_ms_p50": round(percentile(posts, 50), 1),
        "post_ms_p95": round(percentile(posts, 95), 1),
        "total_wait_s": round(sum(r["wait_s"] for r in labels), 2),
        "rounds_trained": sum(1 for r in result["rounds"] if r["accuracy"] is not None),
    }


def markdown(data: dict) -> str:
    meta = data["meta"]
    s = meta["settings"]
    smoke = f", a random {s['limit']} training rows (smoke)" if s["limit"] else ""
    lines = [
        f"Scripted annotator through the web app's HTTP API, {s['seconds_per_label']:g} s per label, seed set "
        f"{s['seed_size']}, batches of {s['batch_size']} (asynchronous: refill every {s['refill_every']}), "
        f"{s['labels']} labels per run{smoke}; "
        f"recorded {meta.get('date')} on {meta.get('machine')} ({meta.get('cpus')} CPUs).",
        "",
        "After the first batch (the seed set):",
        "",
        "| dataset | mode | labels | total wait (s) | wait p50 / p95 / max (s) | waits > 1 s | next text p50 / p95 (ms) "
        "| queue request p95 (ms) | first batch wait (s) | rounds trained | targets (wait ≤ 1 s; p95 ≤ 200 ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in data["results"]:
        summary = summarise(result, s["seed_size"])
        a = summary["after_first_batch"]
        targets = (
            f"{'met' if a['meets_wait_target'] else 'missed'}; {'met' if a['meets_next_text_target'] else 'missed'}"
        )
        lines.append(
            f"| {result['dataset']} | {result['mode']} | {summary['labels']} | {a['total_wait_s']} | "
            f"{a['wait_s_p50']} / {a['wait_s_p95']} / {a['wait_s_max']} | {a['waits_over_1s']} | "
            f"{a['next_text_ms_p50']} / {a['next_text_ms_p95']} | {a['queue_request_ms_p95']} | "
            f"{summary['first_batch_wait_s']} | {summary['rounds_trained']} | {targets} |"
        )
    return "\n".join(lines) + "\n"


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"results": [], "meta": {}}


def save(path: pathlib.Path, data: dict) -> None:
    for result in data["results"]:
        result["summary"] = summarise(result, data["meta"]["settings"]["seed_size"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    path.with_suffix(".md").write_text(markdown(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(bench_data.DATASETS), choices=bench_data.DATASETS)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--labels", type=int, default=200, help="labels per run (then the run is cancelled)")
    parser.add_argument("--seconds-per-label", type=float, default=2.0, help="the annotator's time on a text")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between queue requests while it is empty")
    parser.add_argument(
        "--no-background-poll",
        dest="background_poll",
        action="store_false",
        help="leave out the page's queue read every 4 s while a text is on screen",
    )
    parser.add_argument("--seed-size", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--refill-every", type=int, default=10, help="asynchronous runs: labels between refills")
    parser.add_argument("--seed", type=int, default=0, help="the run's random seed")
    parser.add_argument("--threads", type=int, default=0, help="trainer threads per job (0: the trainer's default)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap fine-tunes at N steps (smoke runs; 0: recipe)")
    parser.add_argument("--max-epochs", type=int, default=0, help="cap fine-tunes at N epochs (0: recipe)")
    parser.add_argument("--limit", type=int, default=0, help="a seeded random N training rows (smoke runs)")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="give a run up after this long")
    parser.add_argument(
        "--embedding-dir",
        type=pathlib.Path,
        help="keep the fast head's embeddings here across runs (default: a fresh folder per run, so the "
        "first asynchronous run of a dataset embeds its pool, as a new user's does)",
    )
    parser.add_argument("--log-dir", type=pathlib.Path, help="keep the services' logs (INFO) here, a folder per run")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "annotator_wait.json")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = load(args.out)
    settings = {
        k: v
        for k, v in vars(args).items()
        if k not in ("datasets", "modes", "out", "report_only", "embedding_dir", "max_minutes", "log_dir")
    }
    if args.report_only:
        save(args.out, data)
        print(markdown(data))
        return 0
    if data["meta"].get("settings") not in (None, settings):
        raise SystemExit(f"{args.out} holds results of other settings {data['meta']['settings']}; use another --out")
    data["meta"].update(
        settings=settings,
        machine=platform.platform(),
        cpus=os.cpu_count(),
        command="python bench/annotator_wait.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    done = {(r["dataset"], r["mode"]) for r in data["results"]}
    for dataset in args.datasets:
        for mode in args.modes:
            if (dataset, mode) in done:
                print(f"skip {dataset} {mode} (already recorded)", flush=True)
                continue
            print(f"{dataset} {mode}: starting", flush=True)
            result = measure(dataset, mode, args)
            data["results"].append(result)
            data["meta"]["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            save(args.out, data)
            summary = result["summary"]
            print(f"{dataset} {mode}: {json.dumps(summary['after_first_batch'])}", flush=True)
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
