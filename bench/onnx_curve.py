"""Does int8 scoring keep the learning curve? Area under the test-accuracy curve of an active-learning
run whose scorer serves ONNX Runtime int8 (``--runtime onnx``) against the same run with torch.

The runs come from ``bench/kept_model.py`` (the real services in process, the bundled MiniLM): the
same dataset, strategy, seed and schedule, once with ``--runtime torch`` and once with ``--runtime
onnx``. Training is the same in both (torch, seeded: a torch run repeats its recorded accuracies
exactly); only the scores acquisition ranks by differ, so the runs part where int8 changes which
texts are picked. AUC = the trapezoid under test accuracy (points) against labels, divided by the
label range: the mean accuracy over the run. Target (issue 27): within 0.3 points of torch, or above.

    python bench/kept_model.py --datasets atis --seeds 0 --strategies clustered-entropy \\
        --runtime onnx --out bench/results/onnx_curve_atis_onnx.json          # and --runtime torch
    python bench/onnx_curve.py --pair atis bench/results/onnx_curve_atis_torch.json \\
        bench/results/onnx_curve_atis_onnx.json --out bench/results/onnx_curve.md
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np


def auc(rounds: list[dict]) -> float:
    """Mean test accuracy in points over the labels the run covered (trapezoid)."""
    labels = np.array([r["labelled"] for r in rounds], float)  # [rounds]
    accuracy = 100 * np.array([r["test_accuracy"] for r in rounds])  # [rounds]
    return float(np.trapezoid(accuracy, labels) / (labels[-1] - labels[0]))


def find(path: pathlib.Path, dataset: str, strategy: str, seed: int) -> dict:
    for run in json.loads(path.read_text())["results"]:
        if (run["dataset"], run["strategy"], run["seed"]) == (dataset, strategy, seed):
            return run
    raise SystemExit(f"{path}: no {dataset} {strategy} seed {seed} run")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pair",
        nargs=3,
        action="append",
        metavar=("DATASET", "TORCH_JSON", "ONNX_JSON"),
        required=True,
        help="a dataset and the kept_model.py results of its torch and onnx runs",
    )
    parser.add_argument("--strategy", default="clustered-entropy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args(argv)
    lines = [
        "| dataset | runtime | labels by round | test accuracy by round (%) | AUC (pt) |",
        "|---|---|---|---|---|",
    ]
    notes = []
    for dataset, torch_json, onnx_json in args.pair:
        runs = {
            name: find(pathlib.Path(p), dataset, args.strategy, args.seed)
            for name, p in (("torch", torch_json), ("onnx int8", onnx_json))
        }
        for name, run in runs.items():
            labels = " / ".join(str(r["labelled"]) for r in run["rounds"])
            accuracy = " / ".join(f"{100 * r['test_accuracy']:.2f}" for r in run["rounds"])
            lines.append(f"| {dataset} | {name} | {labels} | {accuracy} | {auc(run['rounds']):.2f} |")
        difference = auc(runs["onnx int8"]["rounds"]) - auc(runs["torch"]["rounds"])
        verdict = "met" if difference >= -0.3 else "missed"
        notes.append(f"- {dataset}: onnx int8 - torch AUC = {difference:+.2f} points (target >= -0.3: {verdict})")
    text = "\n".join(lines + [""] + notes) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
