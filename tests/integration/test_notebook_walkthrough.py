"""The README's notebook walkthrough ("In a notebook"), run as written in a fresh interpreter against
real services (pool, trainer, scorer, coordinator in this process, on loopback) with the bundled
all-MiniLM-L6-v2: a DataFrame in, a run watched to the end, the learning curve and the labels out
as DataFrames, Parquet both ways (issue 30, item 4). Only the two addresses are replaced.

The data: a seeded sample of ATIS from ../shared/data (the test skips with the reason without it),
written as the walkthrough's two Parquet files: the training frame with its own column names
(``utterance``, ``intent``), the test file with the pool's (``text``, ``label``)."""

from __future__ import annotations

import csv
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ATIS = ROOT.parent / "shared" / "data" / "atis"
ADDRESSES = 'POOL, COORDINATOR = "localhost:50051", "localhost:50054"'

pytestmark = pytest.mark.slow


def walkthrough() -> str:
    """The python block of README's "In a notebook" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### In a notebook") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def _atis(name: str, n: int, seed: int) -> list[tuple[str, str]]:
    import numpy as np

    with (ATIS / name).open(newline="", encoding="utf-8") as handle:
        rows = [(r[0], r[1].strip()) for r in csv.reader(handle) if len(r) >= 2]
    keep = np.random.default_rng(seed).permutation(len(rows))[:n]
    return [rows[i] for i in sorted(keep)]


def test_the_walkthrough_block_is_the_one_this_test_edits():
    code = walkthrough()
    assert code.count(ADDRESSES) == 1, "the walkthrough's address line changed: update ADDRESSES here"
    assert "flights-train.parquet" in code and "flights-test.parquet" in code and "flights-labels.parquet" in code


def test_the_notebook_walkthrough_runs_as_written_against_real_services(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    if not ATIS.is_dir():
        pytest.skip(f"ATIS is not at {ATIS}")
    from tests.stack import start_real_stack

    train = _atis("atis_intents_train.csv", 240, seed=0)
    test = _atis("atis_intents_test.csv", 80, seed=1)
    pd.DataFrame({"utterance": [t for _, t in train], "intent": [label for label, _ in train]}).to_parquet(
        tmp_path / "flights-train.parquet"
    )
    pd.DataFrame({"text": [t for _, t in test], "label": [label for label, _ in test]}).to_parquet(
        tmp_path / "flights-test.parquet"
    )
    stack, stop = start_real_stack(tmp_path / "services")
    try:
        code = walkthrough().replace(
            ADDRESSES, f'POOL, COORDINATOR = "{stack.pool_address}", "{stack.coordinator_address}"'
        )
        env = {**os.environ, "MPLBACKEND": "Agg"}
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stderr[-4000:]
        assert "COMPLETED" in done.stdout, done.stdout[-2000:]
        labels = pd.read_parquet(tmp_path / "flights-labels.parquet")
        # Two rounds of 40: the seed set, then one batch, every label the run's own.
        assert len(labels) == 80 and labels["label"].notna().all()
        gold = {" ".join(t.split()): label for label, t in train}
        texts = labels["text"].map(lambda t: " ".join(t.split()))
        assert (labels["label"] == texts.map(gold)).all()  # the simulated oracle's gold labels
        curve_lines = [line for line in done.stdout.splitlines() if re.match(r"^\d+\s+\d+\s+\d+\s+[01]\.\d+", line)]
        assert len(curve_lines) == 2, done.stdout[-2000:]  # one row per round, each with a test accuracy
    finally:
        stop()
