"""Fine-tuning throughput on CPU: the trainer's training loop (lesslabels.trainer.loop) vs a naive reference loop, same run.

Both fine-tune the bundled all-MiniLM-L6-v2 on the full ATIS train set for the same number of
epochs with the same optimizer (AdamW, same learning rate, linear warm-up/decay), batch size
and seed, then classify the ATIS test set. The reference does what the original notebook did:
batch 32 in file order, each batch tokenised and padded to its longest text, fp32, eval with the
same loop. The engine tokenises once, groups batches by length (shuffled chunks), evaluates in
inference mode with larger length-sorted batches.

    python bench/train_bench.py --epochs 2 --threads 2

The two loops run interleaved, one reference step after each engine step, so that both see the
same load on a machine shared with other jobs; each loop's clock counts only its own work.
samples/s = training samples processed / seconds spent in that loop (for the engine: the whole
training call, its one-off tokenisation included, minus the time spent in reference steps);
samples per CPU-second uses the process CPU time of the same spans. Results go to
bench/results/train_bench.json.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "atis"


def read_csv(path: pathlib.Path, limit: int = 0) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(label, text.strip()) for label, text in csv.reader(f)]
    return rows[:limit] if limit else rows


def linear_schedule(optimizer, warmup_steps: int, total_steps: int):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)


class ReferenceLoop:
    """The notebook's loop: HF model, batch 32 in file order, each batch tokenised and padded to its
    longest text, fp32, plain AdamW. ``step()`` runs one optimizer step and times it."""

    def __init__(self, args, labels, train_rows):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from lesslabels.modeling.models import default_model_path

        self.torch = torch
        self.args = args
        self.rows = train_rows
        self.label_index = {label: i for i, label in enumerate(labels)}
        torch.manual_seed(args.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(default_model_path())
        self.model = AutoModelForSequenceClassification.from_pretrained(
            default_model_path(), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=self.label_index
        )
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=0.01)
        steps_per_epoch = math.ceil(len(train_rows) / args.batch_size)
        self.total_steps = steps_per_epoch * args.epochs
        self.scheduler = linear_schedule(self.optimizer, int(0.1 * self.total_steps), self.total_steps)
        self.starts = [i for _ in range(args.epochs) for i in range(0, len(train_rows), args.batch_size)]
        self.done = 0
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.model.train()

    def step(self) -> bool:
        if self.done >= len(self.starts):
            return False
        started, cpu_started = time.perf_counter(), time.process_time()
        chunk = self.rows[self.starts[self.done] : self.starts[self.done] + self.args.batch_size]
        batch = self.tokenizer(
            [t for _, t in chunk], padding=True, truncation=True, max_length=self.args.max_length, return_tensors="pt"
        )
        target = self.torch.tensor([self.label_index[label] for label, _ in chunk])
        loss = self.model(**batch, labels=target).loss
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        self.done += 1
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.process_time() - cpu_started
        return True

    def evaluate(self, test_rows) -> dict:
        self.model.eval()
        correct = 0
        started = time.perf_counter()
        with self.torch.no_grad():
            for i in range(0, len(test_rows), self.args.batch_size):
                chunk = test_rows[i : i + self.args.batch_size]
                batch = self.tokenizer(
                    [t for _, t in chunk],
                    padding=True,
                    truncation=True,
                    max_length=self.args.max_length,
                    return_tensors="pt",
                )
                predicted = self.model(**batch).logits.argmax(dim=1)
                correct += sum(
                    int(p) == self.label_index[label] for p, (label, _) in zip(predicted, chunk, strict=True)
                )
        n = len(self.rows) * self.args.epochs
        return {
            "train_seconds": self.seconds,
            "train_cpu_seconds": self.cpu_seconds,
            "samples_per_second": n / self.seconds,
            "samples_per_cpu_second": n / self.cpu_seconds,
            "test_accuracy": correct / len(test_rows),
            "eval_seconds": time.perf_counter() - started,
        }


def interleaved_runs(args, labels, train_rows, test_rows) -> tuple[dict | None, dict]:
    """Train the engine; after each of its steps the reference takes one step, so both loops see
    the same machine load. Each loop's time counts only its own work."""
    import numpy as np
    import torch

    from lesslabels.modeling.batching import tokenize
    from lesslabels.contract.metrics import classification_metrics
    from lesslabels.modeling.models import load_classifier, select_device
    from lesslabels.contract import Hyperparameters
    from lesslabels.trainer.loop import Example, autocast_dtype, predict_logits, train

    reference = None if args.skip_reference else ReferenceLoop(args, labels, train_rows)
    device = select_device("cpu")
    torch.manual_seed(args.seed)
    classifier = load_classifier("default", labels)
    config = Hyperparameters(
        learning_rate=args.lr,
        batch_size=args.engine_batch_size,
        max_epochs=args.epochs,
        max_length=args.max_length,
        precision=args.precision,
    )
    examples = [Example(i, text, label) for i, (label, text) in enumerate(train_rows)]
    side = {"seconds": 0.0, "cpu": 0.0}
    wall_started = time.perf_counter()

    def on_progress(p):
        started, cpu_started = time.perf_counter(), time.process_time()
        if p.message:
            print(
                f"engine {p.message} at {time.perf_counter() - wall_started:.0f}s; reference at step "
                f"{reference.done if reference else '-'}",
                flush=True,
            )
        elif reference is not None:
            reference.step()
        side["seconds"] += time.perf_counter() - started
        side["cpu"] += time.process_time() - cpu_started

    started, cpu_started = time.perf_counter(), time.process_time()
    outcome = train(
        classifier.model,
        classifier.tokenizer,
        labels,
        examples,
        [],
        config,
        seed=args.seed,
        device=device,
        on_progress=on_progress,
        progress_every_s=0.0,
    )
    train_seconds = time.perf_counter() - started - side["seconds"]
    cpu_seconds = time.process_time() - cpu_started - side["cpu"]
    if reference is not None:
        while reference.step():
            pass
    started = time.perf_counter()
    dtype = autocast_dtype(args.precision, device)
    token_ids = tokenize(classifier.tokenizer, [t for _, t in test_rows], args.max_length)
    logits = predict_logits(
        classifier.model, token_ids, device=device, pad_id=classifier.tokenizer.pad_token_id, dtype=dtype
    )
    eval_seconds = time.perf_counter() - started
    label_index = {label: i for i, label in enumerate(labels)}
    metrics = classification_metrics(
        np.array([label_index[label] for label, _ in test_rows]), logits.argmax(dim=1).numpy(), labels
    )
    n = len(train_rows) * args.epochs
    engine = {
        "train_seconds": train_seconds,
        "train_cpu_seconds": cpu_seconds,
        "step_seconds": outcome.train_seconds,
        "samples_per_second": n / train_seconds,
        "samples_per_cpu_second": n / cpu_seconds,
        "test_accuracy": metrics.accuracy,
        "test_macro_f1": metrics.macro_f1,
        "eval_seconds": eval_seconds,
        "precision_used": str(dtype or "torch.float32").replace("torch.", ""),
    }
    return (reference.evaluate(test_rows) if reference else None), engine


def pad_stats(args, train_rows) -> dict:
    """Token positions processed per epoch by each batching (the main source of the speed-up)."""
    import numpy as np

    from lesslabels.modeling.batching import length_grouped_batches, tokenize
    from lesslabels.modeling.models import load_tokenizer

    lengths = np.array(
        [len(ids) for ids in tokenize(load_tokenizer("default"), [t for _, t in train_rows], args.max_length)]
    )
    file_order = sum(
        lengths[i : i + args.batch_size].max() * len(lengths[i : i + args.batch_size])
        for i in range(0, len(lengths), args.batch_size)
    )
    grouped = sum(
        lengths[b].max() * len(b)
        for b in length_grouped_batches(lengths, args.engine_batch_size, rng=np.random.default_rng(args.seed))
    )
    return {
        "real_tokens": int(lengths.sum()),
        "file_order_padded_tokens": int(file_order),
        "length_grouped_padded_tokens": int(grouped),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="reference batch size (the notebook's 32)")
    parser.add_argument("--engine-batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["fp32", "bf16", "auto"],
        help="engine precision [auto: the trainer's default, bf16 on CPUs with native bf16]",
    )
    parser.add_argument("--limit", type=int, default=0, help="use only the first N train/test rows (smoke runs)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_bench.json"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    train_rows = read_csv(DATA / "atis_intents_train.csv", args.limit)
    test_rows = read_csv(DATA / "atis_intents_test.csv", args.limit)
    labels = sorted({label for label, _ in train_rows})
    test_rows = [r for r in test_rows if r[0] in set(labels)]
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/train_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads, no GPU",
        "load_average_at_end": os.getloadavg(),
        "train_samples": len(train_rows),
        "test_samples": len(test_rows),
        "epochs": args.epochs,
        "padding": pad_stats(args, train_rows),
    }
    print(json.dumps(result["padding"]), flush=True)
    reference, result["engine"] = interleaved_runs(args, labels, train_rows, test_rows)
    if reference is not None:
        result["reference"] = reference
        print("reference", json.dumps(reference), flush=True)
    print("engine", json.dumps(result["engine"]), flush=True)
    if "reference" in result:
        result["speedup"] = result["engine"]["samples_per_second"] / result["reference"]["samples_per_second"]
        result["speedup_cpu_time"] = (
            result["engine"]["samples_per_cpu_second"] / result["reference"]["samples_per_cpu_second"]
        )
        result["accuracy_gap_points"] = 100 * abs(
            result["engine"]["test_accuracy"] - result["reference"]["test_accuracy"]
        )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result.get(k) for k in ("speedup", "speedup_cpu_time", "accuracy_gap_points")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
