"""Scorer benchmark: score the ATIS training texts with a fine-tuned MiniLM checkpoint, three ways.

  (a) reference: the original notebook's loop (HF model, batch 32 in file order, padding to the
      longest in the batch, fp32, torch.no_grad);
  (b) the scorer's engine in process (length-bucketed dynamic batches, inference_mode);
  (c) the scorer over gRPC (an in-process server from services.scorer.main.build_server) with
      several concurrent clients, each sending Score requests of --request-size texts.

Every mode runs --repeats times, interleaved (a, b, c, a, b, c, ...) so background load on the
shared machine hits all of them alike; the best run of each mode is reported, all runs are kept.
Agreement of (b) and (c) with the fp32 reference: argmax agreement and max |p - p_ref|.

Without --checkpoint, the script fine-tunes the bundled all-MiniLM-L6-v2 briefly (--train-epochs
over --train-samples texts) and publishes it through CheckpointStore into --checkpoint-dir.

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
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ATIS_TRAIN = ROOT.parent / "shared" / "data" / "atis" / "atis_intents_train.csv"


def read_atis(path: pathlib.Path) -> tuple[list[str], list[str]]:
    labels, texts = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            labels.append(row[0].strip())
            texts.append(row[1].strip())
    return labels, texts


def fine_tune(store, labels, texts, *, samples: int, epochs: int, max_length: int, lr: float, seed: int) -> str:
    """A brief fine-tune of the default MiniLM (length-grouped batches), published to ``store``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from services.modeling.models import default_model_path

    base = default_model_path()
    classes = sorted(set(labels))
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(classes), id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)}
    )
    idx = list(range(len(texts)))
    rng.shuffle(idx)
    idx = idx[:samples]
    y = torch.tensor([classes.index(labels[i]) for i in idx])
    enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(idx)), key=lambda k: len(enc[k]))
    batches = [order[s : s + 32] for s in range(0, len(order), 32)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * len(batches)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, 1 - s / steps))
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        rng.shuffle(batches)
        for batch in batches:
            padded = tokenizer.pad({"input_ids": [enc[k] for k in batch]}, return_tensors="pt")
            loss = model(**padded, labels=y[batch]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    print(f"fine-tuned on {len(idx)} texts x {epochs} epoch(s) in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    manifest = {"run_id": 1, "labels": classes, "base_model": "default", "dataset": "atis",
                "hyperparameters": {"max_length": max_length, "learning_rate": lr, "max_epochs": epochs},
                "train_count": len(idx), "seed": seed}
    with store.publish(manifest) as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return manifest["id"]


def reference_loop(folder: pathlib.Path, texts: list[str], max_length: int) -> np.ndarray:
    """The notebook's way: HF model, batch 32 in file order, pad to the batch's longest, fp32."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            enc = tokenizer(texts[start : start + 32], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            out.append(torch.softmax(model(**enc).logits, dim=-1).numpy())
    return np.concatenate(out)


def engine_mode(engine, spec, texts):
    return engine.score(spec, texts).probabilities


def grpc_mode(address: str, checkpoint_id: str, texts: list[str], clients: int, request_size: int) -> np.ndarray:
    from services.common.channels import make_channel
    from services.proto.lesslabels.v1 import common_pb2, scorer_pb2, scorer_pb2_grpc

    chunks = [(s, texts[s : s + request_size]) for s in range(0, len(texts), request_size)]
    out = np.zeros((len(texts), 0), np.float32)
    results: dict[int, np.ndarray] = {}
    channels = [make_channel(address) for _ in range(clients)]
    stubs = [scorer_pb2_grpc.ScorerServiceStub(c) for c in channels]
    ref = common_pb2.ModelRef(checkpoint_id=checkpoint_id)

    def client(k: int) -> None:
        for start, chunk in chunks[k::clients]:  # each client takes every clients-th request
            reply = stubs[k].Score(scorer_pb2.ScoreRequest(model=ref, texts=chunk), timeout=600)
            results[start] = np.array([s.probabilities for s in reply.scores], dtype=np.float32)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    for c in channels:
        c.close()
    out = np.concatenate([results[s] for s, _ in chunks])
    return out


def agreement(probs: np.ndarray, ref: np.ndarray) -> dict:
    return {
        "argmax_agreement": float((probs.argmax(1) == ref.argmax(1)).mean()),
        "max_abs_prob_diff": float(np.abs(probs - ref).max()),
        "mean_abs_prob_diff": float(np.abs(probs - ref).mean()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=pathlib.Path, default=ATIS_TRAIN)
    parser.add_argument("--checkpoint-dir", type=pathlib.Path, default=ROOT / ".lesslabels" / "bench" / "checkpoints")
    parser.add_argument("--checkpoint", default="", help="a published checkpoint id (default: fine-tune one)")
    parser.add_argument("--train-samples", type=int, default=4834)
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N texts (smoke runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--request-size", type=int, default=512)
    parser.add_argument("--precision", default="fp32", help="engine precision for (b) and (c): fp32 or bf16")
    parser.add_argument("--also-bf16", action=argparse.BooleanOptionalAction, default=True,
                        help="also time (b) with bf16 autocast + fp32 re-scoring of rows below --refine-below")
    parser.add_argument("--refine-below", type=float, default=0.7)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results" / "score_cpu.json")
    args = parser.parse_args(argv)

    from services.common.checkpoints import CheckpointStore
    from services.scorer.engine import EngineConfig, ModelSpec, ScorerEngine
    from services.scorer.main import build_server
    from services.common.config import ServerSettings

    torch.set_num_threads(args.threads)
    labels, texts = read_atis(args.data)
    store = CheckpointStore(args.checkpoint_dir)
    checkpoint_id = args.checkpoint or fine_tune(store, labels, texts, samples=args.train_samples,
                                                 epochs=args.train_epochs, max_length=args.max_length, lr=1e-4,
                                                 seed=0)
    checkpoint = store.get(checkpoint_id)
    if args.limit:
        labels, texts = labels[: args.limit], texts[: args.limit]
    spec = ModelSpec(checkpoint_id=checkpoint_id)
    n = len(texts)

    engine = ScorerEngine(store, EngineConfig(precision=args.precision, device="cpu"))
    engine.score(spec, texts[:64])  # load + warm up
    engine_bf16 = None
    if args.also_bf16:
        engine_bf16 = ScorerEngine(store, EngineConfig(precision="bf16", device="cpu", refine_below=args.refine_below))
        engine_bf16.score(spec, texts[:64])
    server = build_server(ServerSettings(host="127.0.0.1", port=0, workers=16, grace_seconds=1),
                          str(args.checkpoint_dir), "", engine_config=EngineConfig(precision=args.precision, device="cpu"),
                          max_texts=max(4096, args.request_size))
    port = server.start()
    server.set_serving()
    address = f"127.0.0.1:{port}"
    grpc_mode(address, checkpoint_id, texts[:64], 2, 32)  # load + warm up

    modes = {
        "a_reference": lambda: reference_loop(checkpoint.path, texts, args.max_length),
        "b_engine": lambda: engine_mode(engine, spec, texts),
        "c_grpc": lambda: grpc_mode(address, checkpoint_id, texts, args.clients, args.request_size),
    }
    if engine_bf16 is not None:
        modes["b_engine_bf16_refined"] = lambda: engine_mode(engine_bf16, spec, texts)
    runs: dict[str, list[float]] = {k: [] for k in modes}
    outputs: dict[str, np.ndarray] = {}
    for r in range(args.repeats):
        for name, fn in modes.items():
            start = time.perf_counter()
            outputs[name] = fn()
            seconds = time.perf_counter() - start
            runs[name].append(seconds)
            print(f"repeat {r} {name}: {n / seconds:.1f} texts/s ({seconds:.1f}s)", file=sys.stderr)
    server.stop(0)
    engine.close()
    if engine_bf16 is not None:
        engine_bf16.close()

    ref = outputs["a_reference"]
    best = {k: n / min(v) for k, v in runs.items()}
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/score_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": args.threads, "torch": torch.__version__,
                    "python": platform.python_version(), "gpu": "none (CPU only in this task)",
                    "load_average_at_end": os.getloadavg()},
        "texts": n,
        "checkpoint": {"id": checkpoint_id, "train_count": checkpoint.manifest.get("train_count"),
                       "max_length": args.max_length},
        "settings": {"precision": args.precision, "clients": args.clients, "request_size": args.request_size,
                     "repeats": args.repeats, "refine_below": args.refine_below, "engine": EngineConfig(precision=args.precision).__dict__},
        "texts_per_s_best": best,
        "texts_per_s_all": {k: [n / s for s in v] for k, v in runs.items()},
        "ratios": {
            "b_over_a": best["b_engine"] / best["a_reference"],
            "c_over_b": best["c_grpc"] / best["b_engine"],
            **({"b_bf16_refined_over_a": best["b_engine_bf16_refined"] / best["a_reference"]} if "b_engine_bf16_refined" in best else {}),
        },
        "agreement_with_fp32_reference": {k: agreement(v, ref) for k, v in outputs.items() if k != "a_reference"},
        "reference_accuracy_on_train_labels": float(
            np.mean(np.array(checkpoint.labels)[ref.argmax(1)] == np.array(labels))),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"texts_per_s_best": best, "ratios": result["ratios"],
                      "agreement": result["agreement_with_fp32_reference"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
