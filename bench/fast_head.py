"""The fast head alone: test accuracy at 2-10 % of the training labels, fit time, and ScorePool speed.

The fast head (``ModelRef.fast_head``) is scikit-learn's logistic regression on the bundled
all-MiniLM-L6-v2's mean-pooled embeddings, fit on the labels a run has. This measures it as a model
of its own, with the product's code: texts are embedded by the scorer's model cache into its
embedding store (``lesslabels.scorer.embedding_store``; kept in ``--cache``, so a rerun embeds
nothing) and the head is ``lesslabels.scorer.fast_head.fit``.

Label sets per dataset, seed and budget (2, 4, 6, 8, 10 % of the training split by default):

  random      a uniform random sample of the training split
  stratified  the same size, each class in proportion (largest remainders), random within a class
  diverse     the fine-tuned headline's random arm: the coordinator's diverse seed set (2 %), then
              uniform random batches of 2 %
  active      the fast head in the loop: the same diverse seed set, then batches of 2 % chosen by
              clustered entropy (the coordinator's own strategy) on the fast head's probabilities

Accuracy is on the test split (ATIS: 800 texts; CLINC150: 4,500), as the recorded fine-tuned
headlines (bench/results/headline_mean.json, clinc_headline.json), which bench/README.md compares.

    python bench/fast_head.py                              # both datasets, 3 seeds, timings
    python bench/fast_head.py --choose-c                   # the regularisation screen on held-out data
    python bench/fast_head.py --datasets atis --seeds 0    # a quick look

``--choose-c`` fits C in ``--c-values`` (1, 10, 100) on random label sets and reads accuracy on data that is never
test: CLINC150's dev split, and for ATIS a fixed 20 % of its training split (as strategy_proxy.py).
``--service`` adds the end-to-end timing through real servers: a pool holding CLINC150's training
split, a run with 10 % of it labelled, and ScorePool of the 13,500 others with the fast head.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
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

import numpy as np  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
DEFAULT_CACHE = pathlib.Path(tempfile.gettempdir()) / "lesslabels-bench-embeddings"
FRACTIONS = (0.02, 0.04, 0.06, 0.08, 0.10)
ARMS = ("random", "stratified", "diverse", "active")


def read_rows(path: pathlib.Path, header: bool) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return [(r[0], r[1]) for r in rows[1 if header else 0 :] if len(r) >= 2]


def load(dataset: str) -> dict[str, list[tuple[str, str]]]:
    """(label, text) rows per split: train, test, and held-out data for the C screen (never test)."""
    if dataset == "clinc150":
        folder = DATA / "clinc150"
        train, test = read_rows(folder / "train.csv", True), read_rows(folder / "test.csv", True)
        return {"train": train, "test": test, "screen_train": train, "screen_eval": read_rows(folder / "dev.csv", True)}
    folder = DATA / "atis"
    train = read_rows(folder / "atis_intents_train.csv", False)
    test = read_rows(folder / "atis_intents_test.csv", False)
    order = np.random.default_rng(12345).permutation(len(train))
    cut = int(0.8 * len(train))
    return {
        "train": train,
        "test": test,
        "screen_train": [train[i] for i in order[:cut]],
        "screen_eval": [train[i] for i in order[cut:]],
    }


class Embedder:
    """The scorer's own path: the model cache's base encoder into an embedding store."""

    def __init__(self, cache_dir: pathlib.Path, precision: str, threads: int):
        import torch

        from lesslabels.common.checkpoints import CheckpointStore
        from lesslabels.scorer.embedding_store import EmbeddingStore
        from lesslabels.scorer.head_scoring import FastHeads
        from lesslabels.scorer.model_cache import CacheConfig, ModelCache

        torch.set_num_threads(threads)
        self._tmp = tempfile.TemporaryDirectory()
        config = CacheConfig(precision=precision, batch_workers=1, max_batch_size=128, max_tokens=8192)
        self.cache = ModelCache(CheckpointStore(self._tmp.name), config)
        self.heads = FastHeads(self.cache, EmbeddingStore(cache_dir), labels=None)  # type: ignore[arg-type]
        self.model = self.heads.embedding_model("default")[1]

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, int, float]:
        started = time.perf_counter()
        out = self.heads.embed("default", texts)
        return out.vectors, out.computed, time.perf_counter() - started

    def close(self) -> None:
        self.cache.close()
        self._tmp.cleanup()


def stratified(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k indices, each class in proportion to its size (largest remainders), random within a class."""
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * k / len(y)
    take = np.floor(exact).astype(int)
    extra = k - take.sum()
    take[np.argsort(-(exact - take), kind="stable")[:extra]] += 1
    picked = [
        rng.choice(np.flatnonzero(y == c), size=min(n, cnt), replace=False)
        for c, n, cnt in zip(classes, take, counts, strict=True)
    ]
    return np.concatenate(picked)


def label_sets(arm: str, x: np.ndarray, y: np.ndarray, labels: list[str], seed: int, fractions, fit) -> dict:
    """{k: indices} for every budget of ``fractions`` (counts of the training split)."""
    from lesslabels.coordinator import strategies

    n = len(y)
    budgets = [int(round(f * n)) for f in fractions]
    rng = np.random.default_rng(seed)
    if arm == "random":
        order = rng.permutation(n)
        return {k: order[:k] for k in budgets}
    if arm == "stratified":
        return {k: stratified(y, k, np.random.default_rng([seed, k])) for k in budgets}
    chosen = strategies.select_seed("diverse", budgets[0], n_samples=n, embeddings=x, rng=rng).indices
    out = {budgets[0]: np.asarray(chosen)}
    for k in budgets[1:]:
        have = out[max(out)]
        more = k - len(have)
        if arm == "diverse":
            rest = np.setdiff1d(np.arange(n), have)
            picked = rng.choice(rest, size=more, replace=False)
        else:  # active: clustered entropy on the fast head's probabilities
            head = fit(x[have], [labels[i] for i in y[have]])
            picked = strategies.select(
                "clustered_entropy", more, probs=head.probabilities(x), embeddings=x, exclude=have, rng=rng
            ).indices
        out[k] = np.concatenate([have, np.asarray(picked)])
    return out


def evaluate(dataset: str, embed: Embedder, args) -> tuple[list[dict], dict]:
    from lesslabels.scorer import fast_head

    rows = load(dataset)
    labels = sorted({label for label, _ in rows["train"]})
    index = {label: i for i, label in enumerate(labels)}
    x, computed_train, train_s = embed([t for _, t in rows["train"]])
    x_test, computed_test, test_s = embed([t for _, t in rows["test"]])
    y = np.array([index[label] for label, _ in rows["train"]])
    y_test = np.array([index.get(label, -1) for label, _ in rows["test"]])
    meta = {
        "train": len(y),
        "test": len(y_test),
        "classes": len(labels),
        "embedded": computed_train + computed_test,
        "embed_seconds": round(train_s + test_s, 1),
    }
    print(f"{dataset}: {meta}", flush=True)

    def fit(vectors, targets):
        return fast_head.fit(vectors, targets, labels, version="bench", c=args.c)

    results = []
    for arm in args.arms:
        for seed in args.seeds:
            for k, picked in sorted(label_sets(arm, x, y, labels, seed, args.fractions, fit).items()):
                assert len(set(picked.tolist())) == k == len(picked)
                head = fit(x[picked], [labels[i] for i in y[picked]])
                predicted = head.probabilities(x_test).argmax(axis=1)
                accuracy = float((predicted == y_test).mean())
                results.append(
                    {
                        "dataset": dataset,
                        "arm": arm,
                        "seed": seed,
                        "labelled": k,
                        "classes_labelled": int(len(head.classes)),
                        "accuracy": accuracy,
                        "fit_seconds": round(head.fit_seconds, 3),
                    }
                )
                print(
                    f"{dataset} {arm} seed {seed} {k:5d} labels: {100 * accuracy:.2f} %  fit {head.fit_seconds:.2f} s",
                    flush=True,
                )
    return results, meta


def fit_timing(embed: Embedder, args) -> dict:
    """Fit and predict time for 10,000 x 384 (CLINC150 training texts, 150 classes; ATIS's 4,834 x 8 too)."""
    from lesslabels.scorer import fast_head

    out = {}
    for dataset, n in (("clinc150", 10_000), ("atis", 0)):
        rows = load(dataset)["train"]
        order = np.random.default_rng(0).permutation(len(rows))[: n or len(rows)]
        picked = [rows[i] for i in order]
        labels = sorted({label for label, _ in rows})
        x, _, _ = embed([t for _, t in picked])
        targets = [label for label, _ in picked]
        fits, predicts, refits = [], [], []
        for _ in range(3):
            head = fast_head.fit(x, targets, labels, version="t", c=args.c)
            started = time.perf_counter()
            head.probabilities(x)
            predicts.append(time.perf_counter() - started)
            fits.append(head.fit_seconds)
            # the loop's case: 20 labels ago the run's head was fit; the refit starts from it
            before = fast_head.fit(x[:-20], targets[:-20], labels, version="b", c=args.c)
            refit = fast_head.fit(x, targets, labels, version="t", c=args.c, start=before)
            refits.append((refit.fit_seconds, refit.iterations))
        out[dataset] = {
            "rows": len(picked),
            "dim": int(x.shape[1]),
            "classes": len(labels),
            "fit_seconds": [round(s, 3) for s in fits],
            "iterations": head.iterations,
            "predict_seconds": [round(s, 4) for s in predicts],
            "refit_after_20_labels_seconds": [round(s, 3) for s, _ in refits],
            "refit_iterations": refits[-1][1],
        }
        print(f"fit {dataset}: {out[dataset]}", flush=True)
    return out


def choose_c(embed: Embedder, args) -> list[dict]:
    from lesslabels.scorer import fast_head

    out = []
    for dataset in args.datasets:
        rows = load(dataset)
        labels = sorted({label for label, _ in rows["train"]})
        index = {label: i for i, label in enumerate(labels)}
        x, _, _ = embed([t for _, t in rows["screen_train"]])
        x_eval, _, _ = embed([t for _, t in rows["screen_eval"]])
        y = np.array([index[label] for label, _ in rows["screen_train"]])
        y_eval = np.array([index[label] for label, _ in rows["screen_eval"]])
        for c in args.c_values:
            for fraction in (0.02, 0.06, 0.10, 0.20):
                accs = []
                for seed in args.seeds:
                    picked = np.random.default_rng(seed).permutation(len(y))[: int(round(fraction * len(y)))]
                    head = fast_head.fit(x[picked], [labels[i] for i in y[picked]], labels, version="c", c=c)
                    accs.append(float((head.probabilities(x_eval).argmax(axis=1) == y_eval).mean()))
                out.append({"dataset": dataset, "c": c, "fraction": fraction, "accuracy": float(np.mean(accs))})
                print(f"C screen {dataset} C={c:g} {fraction:.0%}: {100 * np.mean(accs):.2f} %", flush=True)
    return out


def service_timing(cache_dir: pathlib.Path, args) -> dict:
    """ScorePool with the fast head through a real pool and scorer (CLINC150 train, 10 % labelled)."""
    import grpc

    from lesslabels.client import FastHead, PoolClient, ScorerClient
    from lesslabels.common.channels import make_channel
    from lesslabels.common.config import ServerSettings
    from lesslabels.pool.main import build_server as build_pool
    from lesslabels.scorer.main import build_server as build_scorer
    from lesslabels.scorer.model_cache import CacheConfig
    from lesslabels.v1 import run_pb2, run_store_pb2, run_store_pb2_grpc

    settings = ServerSettings(host="127.0.0.1", port=0, grace_seconds=1.0, workers=8, log_level="WARNING")
    out: dict = {}
    with tempfile.TemporaryDirectory() as work:
        pool_server = build_pool(settings, f"sqlite:///{work}/pool.db")
        pool_server.start()
        pool_server.set_serving()
        address = f"127.0.0.1:{pool_server.port}"
        scorer_server = build_scorer(
            settings,
            f"{work}/checkpoints",
            address,
            cache_config=CacheConfig(precision=args.precision, batch_workers=1),
            embedding_dir=str(cache_dir),
        )
        scorer_server.start()
        scorer_server.set_serving()
        try:
            with PoolClient(address, timeout=600) as pool:
                pool.import_file(DATA / "clinc150" / "train.csv", "clinc", text_column="text", label_column="label")
                samples = pool.list_samples("clinc", page_size=5000)
                config = run_pb2.RunConfig(dataset="clinc")
                config.seed_size.count, config.batch_size.count, config.stopping.max_rounds = 300, 300, 5
                with make_channel(address) as channel:
                    run = run_store_pb2_grpc.RunStoreStub(channel).CreateRun(
                        run_store_pb2.CreateRunRequest(config=config), timeout=30
                    )
                gold = {text: label for label, text in read_rows(DATA / "clinc150" / "train.csv", True)}
                order = np.random.default_rng(0).permutation(len(samples))
                first = [(samples[i].id, gold[samples[i].text]) for i in order[:1500]]
                pool.submit_labels("clinc", first, run_id=run.id)
                with ScorerClient(f"127.0.0.1:{scorer_server.port}", timeout=3600) as scorer:
                    for name in ("first", "again", "after 20 new labels"):
                        if name == "after 20 new labels":
                            pool.submit_labels(
                                "clinc",
                                [(samples[i].id, gold[samples[i].text]) for i in order[1500:1520]],
                                run_id=run.id,
                            )
                        started = time.perf_counter()
                        scores = scorer.score_pool("clinc", run_id=run.id, fast_head=FastHead(run.id), chunk_size=2000)
                        elapsed = time.perf_counter() - started
                        out[name] = {
                            "seconds": round(elapsed, 2),
                            "scored": len(scores.sample_ids),
                            "version": scores.checkpoint_id,
                        }
                        print(f"ScorePool fast head, {name}: {out[name]}", flush=True)
                    started = time.perf_counter()
                    scorer.score_pool(
                        "clinc", run_id=run.id, fast_head=FastHead(run.id), chunk_size=2000, probabilities=False
                    )
                    out["again, probabilities=False"] = {"seconds": round(time.perf_counter() - started, 2)}
                    print(f"ScorePool fast head without probability rows: {out['again, probabilities=False']}")
                    started = time.perf_counter()
                    listed = pool.list_samples("clinc", state="unlabelled", run_id=run.id, page_size=2000)
                    out["pool read alone"] = {
                        "seconds": round(time.perf_counter() - started, 2),
                        "samples": len(listed),
                    }
                    print(f"the same pool read alone: {out['pool read alone']}", flush=True)
                    # the scorer's own work for those texts, in process: store lookups, the head, uncertainty
                    heads = scorer_server.fast_heads
                    assert heads is not None  # the scorer serves the fast head
                    score_page = heads.page_scorer(FastHead(run.id, dataset="clinc"))
                    texts = [s.text for s in listed]
                    started = time.perf_counter()
                    for i in range(0, len(texts), 2000):
                        score_page(texts[i : i + 2000], False)
                    out["head alone, in process"] = {
                        "seconds": round(time.perf_counter() - started, 3),
                        "texts": len(texts),
                    }
                    print(f"the fast head's own work on them: {out['head alone, in process']}", flush=True)
        except grpc.RpcError as exc:  # pragma: no cover - reported, not hidden
            out["error"] = str(exc)
        finally:
            scorer_server.stop(0)
            pool_server.stop(0)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=("atis", "clinc150"), default=["atis", "clinc150"])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--c", type=float, default=None, help="regularisation (default: the scorer's fast_head.C)")
    parser.add_argument("--precision", default="auto", help="the encoder's, as the scorer's --precision [auto]")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for embedding")
    parser.add_argument("--cache", type=pathlib.Path, default=DEFAULT_CACHE, help="the embedding store (kept)")
    parser.add_argument("--choose-c", action="store_true", help="only the regularisation screen")
    parser.add_argument("--c-values", type=float, nargs="+", default=[1.0, 10.0, 100.0], help="C values it screens")
    parser.add_argument("--service", action="store_true", help="also time ScorePool through real servers")
    parser.add_argument("--fit-only", action="store_true", help="only the fit timing (and --service)")
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    from lesslabels.scorer import fast_head

    args.c = args.c or fast_head.C
    started = time.time()
    embed = Embedder(args.cache, args.precision, args.threads)
    report: dict = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "command": "python bench/fast_head.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "c": args.c,
            "precision": args.precision,
            "embedding_model": embed.model.key,
            "encoder_dtype": embed.model.precision,
        }
    }
    try:
        if args.choose_c:
            report["screen"] = choose_c(embed, args)
            out = args.out or RESULTS / "fast_head_c.json"
        elif args.fit_only:
            report["fit_timing"] = fit_timing(embed, args)
            out = args.out or RESULTS / "fast_head_fit.json"
        else:
            report["results"], report["datasets"] = [], {}
            for dataset in args.datasets:
                results, meta = evaluate(dataset, embed, args)
                report["results"] += results
                report["datasets"][dataset] = meta
            report["fit_timing"] = fit_timing(embed, args)
            out = args.out or RESULTS / "fast_head.json"
    finally:
        embed.close()
    if args.service:
        report["service"] = service_timing(args.cache, args)
    report["meta"]["wall_seconds"] = round(time.time() - started, 1)
    if "results" in report:
        report["table"] = table(report["results"])
        print(report["table"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


def table(results: list[dict]) -> str:
    lines = []
    for dataset in sorted({r["dataset"] for r in results}):
        mine = [r for r in results if r["dataset"] == dataset]
        budgets = sorted({r["labelled"] for r in mine})
        lines.append(f"{dataset}: test accuracy (%), mean ± sd over seeds")
        lines.append("| arm | " + " | ".join(f"{k} labels" for k in budgets) + " |")
        lines.append("|---|" + "---:|" * len(budgets))
        for arm in ARMS:
            cells = []
            for k in budgets:
                accs = [100 * r["accuracy"] for r in mine if r["arm"] == arm and r["labelled"] == k]
                cells.append(f"{np.mean(accs):.2f} ± {np.std(accs):.2f}" if accs else "")
            if any(cells):
                lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
