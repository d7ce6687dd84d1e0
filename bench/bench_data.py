"""ATIS and CLINC150 for the benchmarks that label through the services (annotator_wait.py,
async_efficiency.py): the split files to import, a seeded subset of them for smoke runs, and the
gold label of every training text (what a scripted annotator answers).

ATIS (``../shared/data/atis``): headerless ``label,text``, 8 intents kept by the recorded
benchmarks (4,834 training texts, 800 test). CLINC150 (``../shared/data/clinc150``): ``label,text``
with a header, 150 intents (15,000 training texts, 4,500 test).
"""

from __future__ import annotations

import csv
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
DATASETS = ("atis", "clinc150")
#: Per dataset: the folder, the train and test files, and whether they have a header row.
FILES = {
    "atis": ("atis", "atis_intents_train.csv", "atis_intents_test.csv", False),
    "clinc150": ("clinc150", "train.csv", "test.csv", True),
}


def normalise(text: str) -> str:
    """A text as the pool keeps it, for looking its gold label up (ATIS texts start with a space)."""
    return " ".join(text.split())


def read_rows(dataset: str, split: str) -> list[tuple[str, str]]:
    """(label, text) rows of a split."""
    folder, train, test, header = FILES[dataset]
    path = DATA / folder / (train if split == "train" else test)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return [(r[0].strip(), r[1]) for r in rows[1 if header else 0 :] if len(r) >= 2]


def split_files(dataset: str, workdir: pathlib.Path, limit: int = 0) -> dict[str, pathlib.Path]:
    """The train and test files to import (headerless ``label,text``). ``limit`` (smoke runs): a
    seeded random ``limit`` training rows and ``max(limit // 5, 100)`` test rows, so that every
    class may appear (both files are sorted by label)."""
    files = {}
    for split in ("train", "test"):
        rows = read_rows(dataset, split)
        if limit:
            keep = limit if split == "train" else max(limit // 5, 100)
            order = np.random.default_rng(0).permutation(len(rows))[:keep]
            rows = [rows[i] for i in sorted(order)]
        path = workdir / f"{dataset}-{split}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
        files[split] = path
    return files


def gold_labels(dataset: str) -> dict[str, str]:
    """Training text (normalised) -> its gold label; a text given two labels keeps the first."""
    gold: dict[str, str] = {}
    for label, text in read_rows(dataset, "train"):
        gold.setdefault(normalise(text), label)
    return gold


def import_dataset(pool_address: str, dataset: str, workdir: pathlib.Path, limit: int = 0) -> dict[str, int]:
    """Import the train and test splits as ``dataset``; returns the rows imported per split."""
    from lesslabels.client import PoolClient

    counts = {}
    with PoolClient(pool_address) as pool:
        for split, path in split_files(dataset, workdir, limit).items():
            counts[split] = pool.import_file(path, dataset, split=split, format="csv", timeout=600).imported
    return counts
