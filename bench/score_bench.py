"""Scorer benchmark: score the ATIS training texts with a fine-tuned MiniLM checkpoint, three ways.

  (a) reference: the original notebook's loop (HF model, batch 32 in file order, padding to the
      longest in the batch, fp32, torch.no_grad);
  (b) the scorer's engine in process, as the service runs it by default (length-bucketed dynamic
      batches, inference_mode, --precision auto: bf16 with fp32 re-scoring of the rows whose top
      probability is below --refine-below on CPUs with native bf16, else fp32); with --also-fp32
      (default) the engine in plain fp32 as well;
  (c) the scorer over gRPC (an in-process server from lesslabels.scorer.main.build_server) with
      several concurrent clients, each sending Score requests of --request-size texts;
  (b_engine_onnx, c_grpc_onnx) with --onnx (default): (b) and (c) with the scorer's --runtime onnx,
      the checkpoint's ONNX graphs as the trainer publishes them (lesslabels.modeling.onnx_runtime:
      int8 where its check passed, with fp32 re-scoring of the rows below --refine-below), built
      here first when the checkpoint has none.

Each mode's peak resident memory (the worker process's maximum RSS: model, batches, gRPC) is
recorded beside its speed.

Every mode runs --repeats times, interleaved (a, b, c, a, b, c, ...) so background load on the
shared machine hits all of them alike; the best run of each mode is reported, all runs are kept.
Each run is a fresh process (load and warm up, then the timed scoring), as the scorer service and
a notebook each are: torch work from several threads of one process slows every one of them.
Agreement of (b) and (c) with the fp32 reference: argmax agreement and max |p - p_ref|.

Without --checkpoint, the script fine-tunes the bundled all-MiniLM-L6-v2 with the trainer's training loop (lesslabels.trainer.loop)
(--train-epochs over --train-samples texts, lr --train-lr, batch 32) and publishes it through
CheckpointStore into --checkpoint-dir.

    python bench/score_bench.py --out bench/results/score_cpu.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import datetime
import json
import os
import pathlib
import platform
import random
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lesslabels.scorer.model_cache import CacheConfig, parallelism  # noqa: E402

ATIS_TRAIN = ROOT.parent / "shared" / "data" / "atis" / "atis_intents_train.csv"


def read_atis(path: pathlib.Path) -> tuple[list[str], list[str]]:
    labels, texts = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            labels.append(row[0].strip())
            texts.append(row[1].strip())
    return labels, texts


def fine_tune(store, labels, texts, *, samples: int, epochs: int, max_length: int, lr: float, seed: int) -> str:
    """Fine-tune the default MiniLM with the trainer's training loop (batch 32, no validation) and
    publish the checkpoint to ``store`` as the trainer service does."""
    from lesslabels.contract import Hyperparameters
    from lesslabels.modeling.models import default_model_path, load_classifier, save_classifier
    from lesslabels.trainer import loop as trainer_loop

    classes = sorted(set(labels))
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    examples = [trainer_loop.Example(i, texts[i], labels[i]) for i in order[:samples]]
    torch.manual_seed(seed)
    loaded = load_classifier(default_model_path(), classes)
    config = Hyperparameters(learning_rate=lr, batch_size=32, max_epochs=epochs, max_length=max_length)
    outcome = trainer_loop.train(
        loaded.model, loaded.tokenizer, classes, examples, [], config, seed=seed, device=torch.device("cpu")
    )
    print(f"fine-tuned on {len(examples)} texts x {epochs} epoch(s) in {outcome.train_seconds:.0f}s", file=sys.stderr)
    manifest = {
        "run_id": 1,
        "labels": classes,
        "base_model": "default",
        "dataset": "atis",
        "hyperparameters": {"max_length": max_length, "learning_rate": lr, "max_epochs": epochs},
        "train_count": len(examples),
        "seed": seed,
    }
    with store.publish(manifest) as folder:
        save_classifier(loaded.model, loaded.tokenizer, folder)
    return str(manifest["id"])


def reference_loop(folder: pathlib.Path, texts: list[str], max_length: int) -> np.ndarray:
    """The notebook's way: HF model, batch 32 in file order, pad to the batch's longest, fp32.

    A mean-pooled checkpoint's model class is a file in its folder, which transformers runs only
    with ``trust_remote_code=True`` (and refuses to load without): how a notebook loads it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            enc = tokenizer(
                texts[start : start + 32], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            out.append(torch.softmax(model(**enc).logits, dim=-1).numpy())
    return np.concatenate(out)


def engine_mode(engine, spec, texts):
    return engine.score(spec, texts).probabilities


def grpc_mode(address: str, checkpoint_id: str, texts: list[str], clients: int, request_size: int) -> np.ndarray:
    from lesslabels.client import ScorerClient

    chunks = [(s, texts[s : s + request_size]) for s in range(0, len(texts), request_size)]
    results: dict[int, np.ndarray] = {}
    scorers = [ScorerClient(address, timeout=600) for _ in range(clients)]

    def client(k: int) -> None:
        for start, chunk in chunks[k::clients]:  # each client takes every clients-th request
            results[start] = scorers[k].score(chunk, checkpoint=checkpoint_id).probabilities  # [n, k]

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    for scorer in scorers:
        scorer.close()
    return np.concatenate([results[s] for s, _ in chunks])


def agreement(probs: np.ndarray, ref: np.ndarray) -> dict:
    return {
        "argmax_agreement": float((probs.argmax(1) == ref.argmax(1)).mean()),
        "max_abs_prob_diff": float(np.abs(probs - ref).max()),
        "mean_abs_prob_diff": float(np.abs(probs - ref).mean()),
    }


MODES = ("a_reference", "b_engine", "c_grpc", "b_engine_fp32", "b_engine_onnx", "c_grpc_onnx")
ONNX_MODES = ("b_engine_onnx", "c_grpc_onnx")


def ensure_onnx(store, checkpoint_id: str, texts: list[str], max_length: int) -> dict:
    """The checkpoint's ONNX manifest, building its graphs (as the trainer does at publish) when it
    has none; the int8 check runs on ``texts`` (at most 1,000 of them, drawn at random)."""
    from lesslabels.modeling import inference, onnx_export, onnx_runtime

    checkpoint = store.get(checkpoint_id)
    manifest_path = checkpoint.path / onnx_runtime.FOLDER / onnx_export.MANIFEST_FILE
    if not manifest_path.is_file():
        loaded = inference.load_classifier(
            checkpoint.path,
            labels=checkpoint.labels,
            device=torch.device("cpu"),
            max_length=max_length,
            precision="fp32",
        )
        started = time.perf_counter()
        onnx_runtime.build(loaded, checkpoint.path, texts, threads=torch.get_num_threads())
        print(f"built the ONNX graphs in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return json.loads(manifest_path.read_text())


def run_mode(args, mode: str, texts: list[str]) -> tuple[np.ndarray, float, str]:
    """Load, warm up, then time one scoring of ``texts`` in ``mode``: (probabilities, seconds, dtype)."""
    from lesslabels.common.checkpoints import CheckpointStore
    from lesslabels.common.config import ServerSettings
    from lesslabels.scorer.model_cache import ModelSpec, ModelCache
    from lesslabels.scorer.main import build_server

    store = CheckpointStore(args.checkpoint_dir)
    checkpoint = store.get(args.checkpoint)
    spec = ModelSpec(checkpoint_id=args.checkpoint)
    precision = "fp32" if mode == "b_engine_fp32" else args.precision
    runtime = "onnx" if mode in ONNX_MODES else "torch"
    # as `lesslabels scorer --threads N` sets itself up: batches side by side, one torch thread each
    workers, torch_threads = parallelism("cpu", args.threads, args.batch_workers)
    torch.set_num_threads(args.threads if mode == "a_reference" else torch_threads)
    config = CacheConfig(
        precision=precision,
        device="cpu",
        refine_below=args.refine_below,
        batch_workers=workers,
        runtime=runtime,
        onnx_threads=torch_threads,
    )
    if mode == "a_reference":
        reference_loop(checkpoint.path, texts[:64], args.max_length)  # warm up
        start = time.perf_counter()
        probs = reference_loop(checkpoint.path, texts, args.max_length)
        return probs, time.perf_counter() - start, "float32"
    if mode in ("b_engine", "b_engine_fp32", "b_engine_onnx"):
        engine = ModelCache(store, config)
        try:
            engine.score(spec, texts[:64])  # load + warm up
            dtype = served_as(engine.load(spec))
            start = time.perf_counter()
            probs = engine_mode(engine, spec, texts)
            return probs, time.perf_counter() - start, dtype
        finally:
            engine.close()
    server = build_server(
        ServerSettings(host="127.0.0.1", port=0, workers=16, grace_seconds=1),
        str(args.checkpoint_dir),
        "",
        cache_config=config,
        max_texts=max(4096, args.request_size),
    )
    port = server.start()
    server.set_serving()
    try:
        address = f"127.0.0.1:{port}"
        grpc_mode(address, args.checkpoint, texts[:64], 2, 32)  # load + warm up
        dtype = served_as(server.model_cache.load(spec))
        start = time.perf_counter()
        probs = grpc_mode(address, args.checkpoint, texts, args.clients, args.request_size)
        return probs, time.perf_counter() - start, dtype
    finally:
        server.stop(0)


def served_as(entry) -> str:
    """What scored: the torch dtype ("float32", "bfloat16") or the ONNX runtime ("onnx-int8")."""
    if entry.runtime != "torch":
        return entry.runtime
    return str(entry.model.dtype or "torch.float32").replace("torch.", "")


def peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM, which starts afresh at exec (getrusage's
    ru_maxrss would carry the parent's peak over fork and exec)."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return float("nan")


def worker(args) -> int:
    """One timed run of one mode in this (fresh) process; results to --worker-out (.npz)."""
    _, texts = read_atis(args.data)
    if args.limit:
        texts = texts[: args.limit]
    probs, seconds, dtype = run_mode(args, args.worker, texts)
    peak_mib = peak_rss_mib()
    np.savez(args.worker_out, probs=probs, seconds=seconds, dtype=dtype, peak_mib=peak_mib)
    return 0


def spawn(args, mode: str, tmp: pathlib.Path, k: int) -> tuple[np.ndarray, float, str, float]:
    out = tmp / f"{mode}-{k}.npz"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        mode,
        "--worker-out",
        str(out),
        "--checkpoint",
        args.checkpoint,
        "--checkpoint-dir",
        str(args.checkpoint_dir),
        "--data",
        str(args.data),
        "--threads",
        str(args.threads),
        "--limit",
        str(args.limit),
        "--max-length",
        str(args.max_length),
        "--precision",
        args.precision,
        "--refine-below",
        str(args.refine_below),
        "--clients",
        str(args.clients),
        "--request-size",
        str(args.request_size),
        "--batch-workers",
        str(args.batch_workers),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    data = np.load(out)
    return data["probs"], float(data["seconds"]), str(data["dtype"]), float(data["peak_mib"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=pathlib.Path, default=ATIS_TRAIN)
    parser.add_argument("--checkpoint-dir", type=pathlib.Path, default=ROOT / ".lesslabels" / "bench" / "checkpoints")
    parser.add_argument("--checkpoint", default="", help="a published checkpoint id (default: fine-tune one)")
    parser.add_argument("--train-samples", type=int, default=4834)
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--train-lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N texts (smoke runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--batch-workers",
        type=int,
        default=0,
        help="engine batches side by side [0: the scorer's default, one per thread]",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--request-size", type=int, default=512)
    parser.add_argument(
        "--precision",
        default="auto",
        help="engine precision for (b) and (c) [auto: the scorer's default on this machine]",
    )
    parser.add_argument(
        "--also-fp32", action=argparse.BooleanOptionalAction, default=True, help="also time the engine in plain fp32"
    )
    parser.add_argument(
        "--refine-below",
        type=float,
        default=CacheConfig().refine_below,
        help="engine's fp32 re-scoring threshold for (b) and (c) [the scorer's default]",
    )
    parser.add_argument(
        "--onnx",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time (b) and (c) with the scorer's --runtime onnx (int8 where its check passed)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results" / "score_cpu.json")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=pathlib.Path, help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return worker(args)

    from lesslabels.common.checkpoints import CheckpointStore

    torch.set_num_threads(args.threads)
    labels, texts = read_atis(args.data)
    store = CheckpointStore(args.checkpoint_dir)
    if not args.checkpoint:
        args.checkpoint = fine_tune(
            store,
            labels,
            texts,
            samples=args.train_samples,
            epochs=args.train_epochs,
            max_length=args.max_length,
            lr=args.train_lr,
            seed=0,
        )
    checkpoint_id = args.checkpoint
    checkpoint = store.get(checkpoint_id)
    if args.limit:
        labels, texts = labels[: args.limit], texts[: args.limit]
    n = len(texts)

    modes = [m for m in MODES if (args.also_fp32 or m != "b_engine_fp32") and (args.onnx or m not in ONNX_MODES)]
    onnx_manifest = ensure_onnx(store, checkpoint_id, texts, args.max_length) if args.onnx else None
    runs: dict[str, list[float]] = {k: [] for k in modes}
    outputs: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    peaks: dict[str, list[float]] = {k: [] for k in modes}
    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp:
        for r in range(args.repeats):
            for mode in modes:  # interleaved, each run in a fresh process
                outputs[mode], seconds, dtypes[mode], peak = spawn(args, mode, pathlib.Path(tmp), r)
                runs[mode].append(seconds)
                peaks[mode].append(peak)
                print(
                    f"repeat {r} {mode} ({dtypes[mode]}): {n / seconds:.1f} texts/s ({seconds:.1f}s), "
                    f"peak {peak:.0f} MiB",
                    file=sys.stderr,
                )

    ref = outputs["a_reference"]
    best = {k: n / min(v) for k, v in runs.items()}
    engine_config = CacheConfig(precision=args.precision, device="cpu", refine_below=args.refine_below)
    result = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/score_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "gpu": "none (CPU only in this task)",
            "load_average_at_end": os.getloadavg(),
        },
        "texts": n,
        "checkpoint": {
            "id": checkpoint_id,
            "train_count": checkpoint.manifest.get("train_count"),
            "max_length": args.max_length,
        },
        "settings": {
            "precision": args.precision,
            "dtypes": dtypes,
            "batch_workers_and_torch_threads": parallelism("cpu", args.threads, args.batch_workers),
            "clients": args.clients,
            "request_size": args.request_size,
            "repeats": args.repeats,
            "refine_below": args.refine_below,
            "engine": engine_config.__dict__,
        },
        "rows_below_refine_threshold_fp32": float(np.mean(ref.max(1) < args.refine_below)),
        "texts_per_s_best": best,
        "texts_per_s_all": {k: [n / s for s in v] for k, v in runs.items()},
        "ratios": {
            "b_over_a": best["b_engine"] / best["a_reference"],
            "c_over_b": best["c_grpc"] / best["b_engine"],
            **({"b_fp32_over_a": best["b_engine_fp32"] / best["a_reference"]} if "b_engine_fp32" in best else {}),
            **(
                {
                    "c_onnx_over_b_fp32": best["c_grpc_onnx"] / best["b_engine_fp32"],
                    "b_onnx_over_b_fp32": best["b_engine_onnx"] / best["b_engine_fp32"],
                    "c_onnx_over_c": best["c_grpc_onnx"] / best["c_grpc"],
                }
                if args.onnx and "b_engine_fp32" in best
                else {}
            ),
        },
        "peak_rss_mib": {k: max(v) for k, v in peaks.items()},
        "onnx_int8_check": onnx_manifest["int8"] if onnx_manifest else None,
        "agreement_with_fp32_reference": {k: agreement(v, ref) for k, v in outputs.items() if k != "a_reference"},
        "reference_accuracy_on_train_labels": float(
            np.mean(np.array(checkpoint.labels)[ref.argmax(1)] == np.array(labels))
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                "texts_per_s_best": best,
                "ratios": result["ratios"],
                "agreement": result["agreement_with_fp32_reference"],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
