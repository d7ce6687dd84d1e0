"""A cheap screen of query strategies: active learning simulated on frozen sentence embeddings.

Fine-tuning MiniLM on CLINC150 costs about ten minutes per round on these CPUs, so a strategy
comparison with the real trainer over seeds and schedules takes hours. This runs the same loop
in seconds per round with a proxy model: the bundled all-MiniLM-L6-v2, frozen, embeds every text
once (mean pooling, as the trainer's head reads it); the proxy classifier is a cosine classifier
(scale 20) whose rows start at the class means of the labelled embeddings (the trainer's
prototype head) and take 100 Adam steps on the labelled set. Seed sets and query strategies are
the coordinator's own functions (``lesslabels.coordinator.strategies``), fed the proxy's
probabilities and the frozen embeddings.

It answers "which strategy is worth a real run", not "what accuracy does the product reach":
the proxy's uncertainty is not the fine-tuned model's. Accuracy is on a split never labelled:
CLINC150 dev (never test), or for ATIS a fixed 20 % of its train split (as recipe_bench).

    python bench/strategy_proxy.py --dataset clinc150 --schedule 0.06 0.06 0.06
    python bench/strategy_proxy.py --dataset atis --seed-size 0.02 --schedule 0.02 0.02 0.02 0.02

Results: bench/results/strategy_proxy_<dataset>.json (every curve) and the table printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import sys
import time

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
DEFAULT_STRATEGIES = ("random", "entropy", "margin", "clustered_entropy", "clustered_margin")
SCALE = 20.0
PROXY_STEPS = 100


def read_rows(path: pathlib.Path, header: bool) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return [(r[0], r[1]) for r in rows[1 if header else 0 :] if len(r) >= 2]


def load(dataset: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pool rows, evaluation rows) as (label, text), as bench/recipe_bench.py splits them."""
    if dataset == "clinc150":
        return read_rows(DATA / "clinc150" / "train.csv", True), read_rows(DATA / "clinc150" / "dev.csv", True)
    rows = read_rows(DATA / "atis" / "atis_intents_train.csv", False)
    order = np.random.default_rng(12345).permutation(len(rows))
    cut = int(0.8 * len(rows))
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]


def embed(texts: list[str], threads: int) -> np.ndarray:
    """L2-normalised mean-pooled embeddings [n, d] of the bundled encoder (the scorer's code path)."""
    import torch

    from lesslabels.modeling import inference, models

    torch.set_num_threads(threads)
    encoder = inference.load_encoder(models.default_model_path(), device=torch.device("cpu"), precision="fp32")
    rows = inference.tokenize(encoder, texts).input_ids
    order = np.argsort([len(r) for r in rows], kind="stable")
    out = np.zeros((len(rows), encoder.model.config.hidden_size), np.float32)
    for start in range(0, len(rows), 256):
        picked = order[start : start + 256]
        out[picked] = inference.forward(encoder, [rows[i] for i in picked], embeddings=True).embeddings
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def fit_proxy(x: np.ndarray, y: np.ndarray, n_classes: int):
    """A prototype-initialised cosine classifier trained on (x, y); returns probabilities(x)."""
    import torch

    weights = np.zeros((n_classes, x.shape[1]), np.float32)
    np.add.at(weights, y, x)
    w = torch.tensor(weights, requires_grad=True)
    xt, yt = torch.tensor(x), torch.tensor(y)
    optimiser = torch.optim.Adam([w], lr=0.01)
    for _ in range(PROXY_STEPS):
        optimiser.zero_grad()
        logits = SCALE * xt @ torch.nn.functional.normalize(w, dim=1).T
        torch.nn.functional.cross_entropy(logits, yt).backward()
        optimiser.step()
    rows = torch.nn.functional.normalize(w, dim=1).detach().numpy()

    def probabilities(a: np.ndarray) -> np.ndarray:
        z = SCALE * a @ rows.T
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    return probabilities


def run_curve(strategy, seed, x, y, x_eval, y_eval, n_classes, seed_size, schedule) -> list[dict]:
    from lesslabels.coordinator import strategies

    rng = np.random.default_rng(seed)
    n = len(y)
    labelled = np.zeros(n, dtype=bool)
    labelled[
        strategies.select_seed("diverse", int(round(seed_size * n)), n_samples=n, embeddings=x, rng=rng).indices
    ] = True
    curve = []
    for step in range(len(schedule) + 1):
        index = np.flatnonzero(labelled)
        probabilities = fit_proxy(x[index], y[index], n_classes)
        accuracy = float((probabilities(x_eval).argmax(axis=1) == y_eval).mean())
        curve.append({"labelled": int(index.size), "accuracy": accuracy})
        if step == len(schedule):
            break
        k = int(round(schedule[step] * n))
        picked = strategies.select(strategy, k, probs=probabilities(x), embeddings=x, exclude=index, rng=rng).indices
        labelled[picked] = True
    return curve


def auc(curve: list[dict]) -> float:
    """Mean accuracy over the labelled range (trapezoid over labels, divided by the range)."""
    xs = np.array([c["labelled"] for c in curve], float)
    ys = np.array([c["accuracy"] for c in curve])
    return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0])) if xs.size > 1 else float(ys[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("clinc150", "atis"), default="clinc150")
    parser.add_argument("--strategies", nargs="+", default=list(DEFAULT_STRATEGIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed-size", type=float, default=0.02, help="diverse seed set, fraction of the pool")
    parser.add_argument("--schedule", type=float, nargs="+", default=[0.06, 0.06, 0.06], help="batch per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args(argv)
    out = args.out or RESULTS / f"strategy_proxy_{args.dataset}.json"

    pool, evaluation = load(args.dataset)
    classes = sorted({label for label, _ in pool})
    index = {label: i for i, label in enumerate(classes)}
    started = time.perf_counter()
    x = embed([t for _, t in pool], args.threads)
    x_eval = embed([t for _, t in evaluation], args.threads)
    embed_s = time.perf_counter() - started
    y = np.array([index[label] for label, _ in pool])
    y_eval = np.array([index.get(label, -1) for label, _ in evaluation])

    results = []
    for strategy in args.strategies:
        for seed in args.seeds:
            curve = run_curve(strategy, seed, x, y, x_eval, y_eval, len(classes), args.seed_size, args.schedule)
            results.append({"strategy": strategy, "seed": seed, "curve": curve, "auc": auc(curve)})
            print(strategy, seed, " ".join(f"{100 * c['accuracy']:.2f}" for c in curve), flush=True)
    random_auc = (
        np.mean([r["auc"] for r in results if r["strategy"] == "random"]) if "random" in args.strategies else None
    )
    lines = [
        f"{args.dataset}: pool {len(y)}, evaluated on {len(y_eval)}, seeds {args.seeds}, "
        f"seed set {args.seed_size:g}, batches {args.schedule}",
        "| strategy | mean accuracy per round (%) | AUC (%) | AUC minus random (points) |",
        "|---|---|---|---|",
    ]
    for strategy in args.strategies:
        mine = [r for r in results if r["strategy"] == strategy]
        mean_curve = np.mean([[c["accuracy"] for c in r["curve"]] for r in mine], axis=0)
        mean_auc = float(np.mean([r["auc"] for r in mine]))
        versus = "" if random_auc is None else f"{100 * (mean_auc - random_auc):+.2f}"
        lines.append(
            f"| {strategy} | {' / '.join(f'{100 * a:.2f}' for a in mean_curve)} | {100 * mean_auc:.2f} | {versus} |"
        )
    table = "\n".join(lines)
    print(table)
    meta = {"embed_seconds": round(embed_s, 1), "proxy": f"cosine, scale {SCALE}, {PROXY_STEPS} Adam steps"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"args": vars(args) | {"out": str(out)}, "meta": meta, "results": results, "table": table}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
