"""The trainer's recipe on few labels per class: the ATIS-tuned recipe vs the adaptive one.

Fine-tunes the bundled all-MiniLM-L6-v2 with the trainer's training loop (lesslabels.trainer.loop) on a random labelled subset
and reports accuracy on data never used for training or tuning decisions of the run:

  clinc150  N random labels of CLINC150's train split (150 intents, 100 texts each); accuracy on
            the dev split (never the test split)
  atis      N random labels of 80 % of ATIS train; accuracy on the other 20 % of ATIS train
            (held out by a fixed permutation; never the test split)

Recipes (every one lr 1e-4, batch 16, max length 64, at least 250 steps, as ``run``/the demo):

  old        the ATIS-tuned recipe: 10 epochs (more when 250 steps need them), at most 600 steps
             (the demo's cap), 10 % of the labels held out for early stopping (patience 2),
             random head
  new        the trainer's defaults now: at least 8 steps per class, prototype head, no hold-out
             below 10 labels per class (so training runs the planned steps on every label), the
             head reading mean-pooled token vectors
  new-random-head, new-holdout, new-cls
             ``new`` with one part reverted (the random head; the old hold-out; BERT's pooled
             [CLS] output, the pooling before 2026-12-01 afternoon)
  prototype, prototype-cls
             the prototype head alone, no fine-tuning (nearest class mean): a reference
  warm, warm-half
             a warm start as ``run --warm-start`` does it: ``new`` trained first on a random
             ``--warm-from`` of the N labels (the previous round), then trained on all N from that
             model, head included (``warm``: the planned steps of ``new``; ``warm-half``: half of
             them). Accuracy and ``train_seconds`` are the second training's, the round's cost

    python bench/recipe_bench.py --dataset clinc150 --labels 300 --recipes old new --seeds 0
    python bench/recipe_bench.py --dataset atis --labels 100 300 --recipes old new --seeds 0
    python bench/recipe_bench.py --dataset clinc150 --labels 1200 --warm-from 300 --recipes new warm warm-half

One torch thread by default (a shared machine: accuracy is what this measures, not speed).
Each result is appended to bench/results/recipe_bench.jsonl as it finishes.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "recipe_bench.jsonl"
RECIPES = (
    "old",
    "new",
    "new-random-head",
    "new-holdout",
    "new-cls",
    "prototype",
    "prototype-cls",
    "warm",
    "warm-half",
)


def recipe_config(name: str):
    from lesslabels.contract import Hyperparameters

    common = Hyperparameters(learning_rate=1e-4, batch_size=16, max_length=64, min_steps=250)
    if name == "old":
        return dataclasses.replace(
            common,
            max_epochs=10,
            patience=2,
            max_steps=600,
            min_steps_per_class=0,
            head_init="random",
            holdout_min_per_class=0,
            pooling="cls",
        )
    if name in ("new", "prototype", "warm", "warm-half"):
        return common
    if name == "new-random-head":
        return dataclasses.replace(common, head_init="random")
    if name in ("new-cls", "prototype-cls"):
        return dataclasses.replace(common, pooling="cls")
    if name == "new-holdout":
        return dataclasses.replace(common, holdout_min_per_class=0)
    raise SystemExit(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")


def read_rows(path: pathlib.Path, header: bool) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return [(r[0], r[1]) for r in rows[1 if header else 0 :] if len(r) >= 2]


def load_split(dataset: str):
    """(pool rows, evaluation rows) as (label, text) pairs."""
    import numpy as np

    if dataset == "clinc150":
        return read_rows(DATA / "clinc150" / "train.csv", True), read_rows(DATA / "clinc150" / "dev.csv", True)
    if dataset == "atis":
        rows = read_rows(DATA / "atis" / "atis_intents_train.csv", False)
        order = np.random.default_rng(12345).permutation(len(rows))
        cut = int(0.8 * len(rows))
        return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]
    raise SystemExit(f"unknown dataset {dataset!r}")


# (dataset, labels, warm_from, seed) -> the first training's state dict, shared by warm and warm-half
_WARM_STATES: dict[tuple, dict] = {}


def run_one(dataset: str, n_labels: int, recipe: str, seed: int, device, warm_from: int = 0) -> dict:
    import numpy as np
    import torch

    from lesslabels.modeling import models
    from lesslabels.modeling.batching import tokenize
    from lesslabels.trainer import loop

    pool, evaluation = load_split(dataset)
    labels = sorted({label for label, _ in pool})
    picked = np.random.default_rng(seed).choice(len(pool), size=n_labels, replace=False)
    labelled = [loop.Example(int(i), pool[i][1], pool[i][0]) for i in picked]
    config = recipe_config(recipe)
    train_set, validation_set = loop.validation_split(labelled, config, seed)
    torch.manual_seed(seed)
    classifier = models.load_classifier(models.default_model_path(), labels, device=device, pooling=config.pooling)
    pad_id = classifier.tokenizer.pad_token_id or 0
    warm = recipe.startswith("warm")
    first_steps = 0
    if warm:
        n_first = warm_from or n_labels // 4
        key = (dataset, n_labels, n_first, seed)
        if key not in _WARM_STATES:
            # the previous round: the same recipe on the first n_first of the same random draw
            first = loop.train(
                classifier.model,
                classifier.tokenizer,
                labels,
                *loop.validation_split(labelled[:n_first], config, seed),
                config,
                seed=seed,
                device=device,
            )
            _WARM_STATES[key] = {
                "state": {k: v.clone() for k, v in classifier.model.state_dict().items()},
                "steps": first.steps,
            }
        classifier.model.load_state_dict(_WARM_STATES[key]["state"])
        first_steps = _WARM_STATES[key]["steps"]
        if recipe == "warm-half":
            _epochs, planned = loop.planned_steps(config, len(train_set), len(labels))
            half = max(1, planned // 2)
            config = dataclasses.replace(config, min_steps=half, min_steps_per_class=0, max_steps=half)
    started = time.perf_counter()
    if recipe.startswith("prototype"):
        ids = tokenize(classifier.tokenizer, [e.text for e in train_set], config.max_length)
        index = {label: i for i, label in enumerate(labels)}
        loop.init_head_from_prototypes(
            classifier.model, ids, np.array([index[e.label] for e in train_set]), device=device, pad_id=pad_id
        )
        outcome = None
    else:
        outcome = loop.train(
            classifier.model,
            classifier.tokenizer,
            labels,
            train_set,
            validation_set,
            config,
            seed=seed,
            device=device,
            fresh_head=not warm,
        )
    train_s = time.perf_counter() - started
    eval_ids = tokenize(classifier.tokenizer, [t for _, t in evaluation], config.max_length)
    targets = np.array([labels.index(label) for label, _ in evaluation])
    metrics = loop.evaluate(classifier.model, eval_ids, targets, labels, device=device, pad_id=pad_id)
    return {
        "dataset": dataset,
        "labels": n_labels,
        "recipe": recipe,
        "pooling": config.pooling,
        "seed": seed,
        "classes_labelled": len({e.label for e in labelled}),
        "train": len(train_set),
        "validation": len(validation_set),
        "steps": outcome.steps if outcome else 0,
        "warm_from": (warm_from or n_labels // 4) if warm else 0,
        "first_steps": first_steps,
        "epochs": outcome.epochs_run if outcome else 0,
        "best_epoch": outcome.best_epoch if outcome else 0,
        "stop": outcome.stop_reason if outcome else "no training",
        "eval_split": "dev" if dataset == "clinc150" else "20% of train held out",
        "accuracy": metrics.accuracy,
        "macro_f1": metrics.macro_f1,
        "train_seconds": round(train_s, 1),
        "threads": torch.get_num_threads(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("clinc150", "atis"), required=True)
    parser.add_argument("--labels", type=int, nargs="+", required=True, help="labelled-set sizes")
    parser.add_argument("--recipes", nargs="+", default=["old", "new"], choices=RECIPES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--warm-from", type=int, default=0, help="warm recipes: labels of the first training [a quarter of N]"
    )
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from lesslabels.modeling import models

    torch.set_num_threads(args.threads)
    device = models.select_device("cpu")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n_labels in args.labels:
        for seed in args.seeds:
            for recipe in args.recipes:
                result = run_one(args.dataset, n_labels, recipe, seed, device, warm_from=args.warm_from)
                print(json.dumps(result), flush=True)
                with args.out.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
