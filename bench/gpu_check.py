"""GPU check (issue 27, item 4): training samples/s and scoring texts/s on a CUDA GPU, with the CPU
numbers of the same machine beside them. Run through ``bench/gpu_check.sh`` (it finds a Python,
makes ``lesslabels`` importable from this checkout and caps the run at 8 minutes).

Everything runs in one process on the bundled all-MiniLM-L6-v2 and the ATIS training texts
(4,834, 8 intents):

1. training: ``lesslabels.trainer.loop.train`` as the trainer runs it (length-grouped batches,
   fused AdamW, ``precision=auto``: bf16 autocast on the GPU), from the base model, no validation,
   after a short warm-up training on the same device. samples/s = samples / seconds in the
   optimizer steps (``TrainOutcome.samples_per_second``); the wall time of the whole call (tokenising,
   the prototype head) is recorded beside it;
2. the model the first GPU training gave is published to a checkpoint store in a temporary folder;
3. scoring: ``ModelCache.score`` (the scorer's engine, in process: tokenising, the dynamic batcher,
   the forward passes, fp32 re-scoring of rows below ``refine_below``) on the ATIS texts repeated
   to ``--score-texts``; per mode a warm-up call, then ``--repeats`` timed calls (best and all kept).
   GPU modes: ``auto`` (bf16 + re-scoring) with the scorer's default batch limits, the same with
   larger batches, plain ``fp32``, and ONNX Runtime's CUDA provider (fp32 graph) where
   ``onnxruntime-gpu`` is installed;
4. the same on the CPU of the machine, on fewer texts and samples (``--cpu-*``), with the
   scorer's CPU layout (one batch worker per thread, ``parallelism``).

``--cpu-only`` runs the CPU half alone (no GPU needed): a dry run of this script. A phase that
would start after ``--budget-s`` is skipped and recorded as such, so the JSON is always written.
``--prepare DIR`` writes what a machine without network needs beside the checkout: the model with
its weights rounded to fp16 (half the size; restored to fp32 before use, so every computation is
the usual one, from slightly rounded starting weights) and the ATIS training file.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
PREPARED = ROOT / ".lesslabels" / "gpu_check"
ATIS_TRAIN = "atis_intents_train.csv"
FP16_MARKER = "gpu_check_fp16.json"
TARGETS = {"score_texts_per_s": 20_000, "train_samples_per_s": 2_000}


def read_atis(path: pathlib.Path) -> tuple[list[str], list[str]]:
    labels, texts = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            labels.append(row[0].strip())
            texts.append(row[1].strip())
    return labels, texts


def default_data() -> pathlib.Path:
    for path in (PREPARED / ATIS_TRAIN, ROOT.parent / "shared" / "data" / "atis" / ATIS_TRAIN):
        if path.is_file():
            return path
    raise SystemExit(f"gpu_check: no {ATIS_TRAIN}: give --data, or run bench/gpu_check.sh --prepare where it is")


def prepare(folder: pathlib.Path) -> None:
    """The bundled model (weights in fp16) and the ATIS training file, for a machine without network."""
    from safetensors.torch import load_file, save_file

    from lesslabels.modeling.models import default_model_path

    source = pathlib.Path(default_model_path())
    model = folder / "model"
    if model.exists():
        shutil.rmtree(model)
    model.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file() and item.name != "model.safetensors":
            shutil.copy2(item, model / item.name)
    weights = load_file(str(source / "model.safetensors"))
    save_file({k: v.half().contiguous() for k, v in weights.items()}, str(model / "model.safetensors"))
    (model / FP16_MARKER).write_text(json.dumps({"source": str(source), "restore": "float32"}) + "\n")
    shutil.copyfile(default_data(), folder / ATIS_TRAIN)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"gpu_check: prepared {folder} ({size / 2**20:.1f} MiB)")


def model_folder(given: str, scratch: pathlib.Path) -> str:
    """The base model's folder: ``given``, the prepared one, or the bundled one; a prepared (fp16)
    folder is restored to fp32 weights in ``scratch`` first."""
    from lesslabels.modeling.models import default_model_path

    folder = pathlib.Path(given) if given else PREPARED / "model"
    if not given and not folder.is_dir():
        return default_model_path()
    if not (folder / FP16_MARKER).is_file():
        return str(folder)
    from safetensors.torch import load_file, save_file

    restored = scratch / "model"
    shutil.copytree(folder, restored, ignore=shutil.ignore_patterns("model.safetensors", FP16_MARKER))
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v.float().contiguous() for k, v in weights.items()}, str(restored / "model.safetensors"))
    return str(restored)


class Budget:
    def __init__(self, seconds: float):
        self.started = time.monotonic()
        self.seconds = seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)


def train_once(base: str, device, labels, texts, *, samples: int, epochs: int, batch_size: int, max_steps: int = 0):
    """One training from the base model; (loaded classifier, result dict)."""
    import torch

    from lesslabels.contract import Hyperparameters
    from lesslabels.modeling.models import load_classifier
    from lesslabels.trainer import loop

    classes = sorted(set(labels))
    examples = [loop.Example(i, texts[i], labels[i]) for i in range(min(samples, len(texts)))]
    torch.manual_seed(0)
    loaded = load_classifier(base, classes, device=device)
    config = Hyperparameters(
        learning_rate=5e-5,
        batch_size=batch_size,
        max_epochs=epochs,
        max_length=64,
        min_steps_per_class=0,
        max_steps=max_steps,
        precision="auto",
    )
    started = time.perf_counter()
    outcome = loop.train(loaded.model, loaded.tokenizer, classes, examples, [], config, seed=0, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - started
    result = {
        "device": str(device),
        "batch_size": batch_size,
        "precision": str(loop.autocast_dtype("auto", device) or "torch.float32").replace("torch.", ""),
        "samples": outcome.samples_seen,
        "steps": outcome.steps,
        "step_seconds": round(outcome.train_seconds, 3),
        "samples_per_s": round(outcome.samples_per_second, 1),
        "wall_seconds": round(wall, 3),
        "samples_per_s_wall": round(outcome.samples_seen / wall, 1),
    }
    return loaded, result


def publish(loaded, labels) -> tuple[Any, str]:
    """The trained classifier as a checkpoint in a temporary store, as the trainer publishes one."""
    from lesslabels.common.checkpoints import CheckpointStore
    from lesslabels.modeling.models import save_classifier

    store = CheckpointStore(tempfile.mkdtemp(prefix="gpu-check-checkpoints-"))
    manifest: dict[str, Any] = {
        "run_id": 1,
        "labels": sorted(set(labels)),
        "base_model": "default",
        "dataset": "atis",
        "hyperparameters": {"max_length": 64},
    }
    loaded.model.to("cpu")
    with store.publish(manifest) as folder:
        save_classifier(loaded.model, loaded.tokenizer, folder)
    return store, str(manifest["id"])


def export_onnx_fp32(store, checkpoint_id: str) -> None:
    """The checkpoint's fp32 ONNX graph beside it (what ``--runtime onnx`` serves on CUDA)."""
    import torch

    from lesslabels.modeling import inference, onnx_export, onnx_runtime

    checkpoint = store.get(checkpoint_id)
    loaded = inference.load_classifier(
        checkpoint.path, labels=checkpoint.labels, device=torch.device("cpu"), precision="fp32"
    )
    folder = checkpoint.path / onnx_runtime.FOLDER
    manifest = onnx_export.export_onnx(loaded, folder, {"checkpoint": checkpoint_id})
    (folder / onnx_export.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", "utf-8")


def score_mode(store, checkpoint_id, texts, repeats: int, **config) -> tuple[dict, Any]:
    """Warm up, then time ``repeats`` scorings of ``texts`` with a ModelCache of ``config``."""
    from lesslabels.scorer.model_cache import CacheConfig, ModelCache, ModelSpec

    spec = ModelSpec(checkpoint_id=checkpoint_id)
    cache = ModelCache(store, CacheConfig(**config))
    try:
        cache.score(spec, texts[:2048])
        seconds = []
        probs = None
        for _ in range(repeats):
            started = time.perf_counter()
            probs = cache.score(spec, texts).probabilities
            seconds.append(time.perf_counter() - started)
        entry = cache.load(spec)
        dtype = str(getattr(entry.model, "dtype", None) or "torch.float32").replace("torch.", "")
        result = {
            "texts": len(texts),
            "runtime": entry.runtime,
            "dtype": dtype,
            "refine_below": config.get("refine_below", CacheConfig().refine_below) if entry.refine else 0.0,
            "config": {k: v for k, v in config.items()},
            "seconds": [round(s, 3) for s in seconds],
            "texts_per_s_best": round(len(texts) / min(seconds), 1),
            "texts_per_s_all": [round(len(texts) / s, 1) for s in seconds],
        }
        return result, probs
    finally:
        cache.close()


def agreement(probs, reference) -> dict:
    import numpy as np

    n = min(len(probs), len(reference))
    return {
        "argmax_agreement": float((probs[:n].argmax(1) == reference[:n].argmax(1)).mean()),
        "max_abs_prob_diff": float(np.abs(probs[:n] - reference[:n]).max()),
    }


def machine(device_name: str) -> dict:
    import torch

    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": device_name,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        info["onnxruntime"] = None
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def run(args) -> dict:
    import torch

    from lesslabels.scorer.model_cache import parallelism

    budget = Budget(args.budget_s)
    # --device cpu runs the GPU half's code on the CPU: a check of this script, not a measurement
    gpu = None if args.cpu_only else torch.device(args.device)
    if gpu is not None and gpu.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA device (use --cpu-only for the CPU half alone)")
    gpu_name = "none (--cpu-only)" if gpu is None else str(gpu)
    if gpu is not None and gpu.type == "cuda":
        gpu_name = torch.cuda.get_device_name(gpu)
    train_samples = args.train_samples or None
    labels, texts = read_atis(args.data)
    score_texts = [texts[i % len(texts)] for i in range(args.score_texts)]
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/gpu_check.py " + " ".join(args.argv),
        "machine": machine(gpu_name),
        "targets": TARGETS,
        "train": [],
        "score": [],
        "skipped": [],
    }
    threads = args.threads or os.cpu_count() or 1
    workers, torch_threads = parallelism("cpu", threads)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="gpu-check-"))
    base = model_folder(args.model, scratch)
    result["model"] = (
        f"{args.model or PREPARED / 'model'} (weights stored in fp16, restored to fp32)"
        if base.startswith(str(scratch))
        else base
    )

    def phase(name: str, need_s: float) -> bool:
        if budget.left() < need_s:
            result["skipped"].append(f"{name}: {budget.left():.0f}s of the budget left, {need_s:.0f}s needed")
            print(f"gpu_check: skipped {name} (budget)", file=sys.stderr, flush=True)
            return False
        print(f"gpu_check: {name} ({budget.left():.0f}s left)", file=sys.stderr, flush=True)
        return True

    trained = None
    if gpu is not None:
        torch.set_num_threads(threads)
        warm_up = min(len(texts), train_samples or len(texts))
        train_once(base, gpu, labels, texts, samples=warm_up, epochs=1, batch_size=32, max_steps=20)
        for batch_size in args.train_batch_sizes:
            if phase(f"train on {gpu}, batch {batch_size}", 60):
                loaded, row = train_once(
                    base,
                    gpu,
                    labels,
                    texts,
                    samples=train_samples or len(texts),
                    epochs=args.epochs,
                    batch_size=batch_size,
                )
                result["train"].append(row)
                trained = trained or loaded
    if phase("train on the CPU", 60):
        torch.set_num_threads(threads)
        loaded, row = train_once(
            base, torch.device("cpu"), labels, texts, samples=args.cpu_train_samples, epochs=1, batch_size=32
        )
        row["threads"] = threads
        result["train"].append(row)
        trained = trained or loaded
    if trained is None:
        return result
    store, checkpoint_id = publish(trained, labels)
    result["checkpoint"] = {"id": checkpoint_id, "trained_on": result["train"][0]["device"]}

    reference = auto_probs = None
    if gpu is not None:
        torch.set_num_threads(threads)
        device = str(gpu)
        modes: list[tuple[str, dict[str, Any]]] = [
            ("auto", {"precision": "auto"}),
            ("auto, larger batches", {"precision": "auto", "max_batch_size": 1024, "max_tokens": 65536}),
            ("fp32", {"precision": "fp32"}),
        ]
        for name, config in modes:
            if phase(f"score on {device}: {name}", 45):
                row, probs = score_mode(store, checkpoint_id, score_texts, args.repeats, device=device, **config)
                result["score"].append({"mode": name, "device": device, **row})
                if name == "fp32":
                    reference = probs
                elif name == "auto":
                    auto_probs = probs
        from lesslabels.modeling import onnx_runtime

        if not onnx_runtime.cuda_available():
            result["skipped"].append("ONNX Runtime on CUDA: this onnxruntime has no CUDAExecutionProvider")
        elif phase(f"score on {device}: ONNX Runtime CUDA provider (fp32 graph)", 90):
            export_onnx_fp32(store, checkpoint_id)
            row, probs = score_mode(store, checkpoint_id, score_texts, args.repeats, device=device, runtime="onnx")
            row["agreement_with_fp32"] = agreement(probs, reference) if reference is not None else None
            result["score"].append({"mode": "onnx (CUDA provider)", "device": device, **row})
        if reference is not None and auto_probs is not None:
            for row in result["score"]:
                if row["mode"] == "auto":
                    row["agreement_with_fp32"] = agreement(auto_probs, reference)
    cpu_texts = score_texts[: args.cpu_score_texts]
    if phase("score on the CPU: auto", 45):
        torch.set_num_threads(torch_threads)
        row, probs = score_mode(
            store, checkpoint_id, cpu_texts, args.cpu_repeats, device="cpu", precision="auto", batch_workers=workers
        )
        row["threads"] = f"{workers} batch workers x {torch_threads} torch threads"
        if reference is not None:
            row["agreement_with_gpu_fp32"] = agreement(probs, reference)
        result["score"].append({"mode": "auto", "device": "cpu", **row})
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(store.root, ignore_errors=True)
    return result


def summary(result: dict) -> str:
    lines = [
        f"GPU check {result['date']}: {result['machine']['gpu']}, {result['machine']['cpu_count']} CPUs, "
        f"torch {result['machine']['torch']}",
        "",
        "| what | device | setting | rate | target |",
        "|---|---|---|---:|---|",
    ]
    for row in result["train"]:
        target = TARGETS["train_samples_per_s"]
        met = (
            "" if row["device"] == "cpu" else f">= {target:,}: {'met' if row['samples_per_s'] >= target else 'NOT met'}"
        )
        lines.append(
            f"| training | {row['device']} | batch {row['batch_size']}, {row['precision']}, {row['samples']:,} samples "
            f"| {row['samples_per_s']:,.0f} samples/s ({row['samples_per_s_wall']:,.0f} wall) | {met} |"
        )
    for row in result["score"]:
        target = TARGETS["score_texts_per_s"]
        met = (
            ""
            if row["device"] == "cpu"
            else f">= {target:,}: {'met' if row['texts_per_s_best'] >= target else 'NOT met'}"
        )
        lines.append(
            f"| scoring | {row['device']} | {row['mode']} ({row['runtime']}, {row['dtype']}), {row['texts']:,} texts "
            f"| {row['texts_per_s_best']:,.0f} texts/s | {met} |"
        )
    lines += [f"skipped: {s}" for s in result["skipped"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=pathlib.Path, help="write the model (fp16) and data here, and stop")
    parser.add_argument("--cpu-only", action="store_true", help="the CPU half alone (a dry run without a GPU)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="", help=f"base model folder [{PREPARED / 'model'}, else the bundled one]")
    parser.add_argument("--data", type=pathlib.Path, default=None, help=f"ATIS training CSV [{PREPARED / ATIS_TRAIN}]")
    parser.add_argument("--epochs", type=int, default=2, help="GPU training epochs over the ATIS texts")
    parser.add_argument("--train-samples", type=int, default=0, help="GPU training texts [0: all 4,834]")
    parser.add_argument("--train-batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[32, 128])
    parser.add_argument("--score-texts", type=int, default=50_000, help="texts per GPU scoring (ATIS repeated)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-train-samples", type=int, default=320)
    parser.add_argument("--cpu-score-texts", type=int, default=2_000)
    parser.add_argument("--cpu-repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads [all cores]")
    parser.add_argument("--budget-s", type=float, default=420, help="start no phase after this many seconds")
    parser.add_argument("--out", type=pathlib.Path, required=False)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.prepare:
        prepare(args.prepare)
        return 0
    args.data = args.data or default_data()
    result = run(args)
    text = summary(result)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(text + "\n")
        print(f"gpu_check: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
