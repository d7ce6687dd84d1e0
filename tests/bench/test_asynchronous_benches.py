"""The arithmetic behind the asynchronous-rounds benchmarks' verdicts (bench/async_efficiency.py,
bench/annotator_wait.py) and the data they import (bench/bench_data.py), on hand-made inputs."""

from __future__ import annotations

import csv
import importlib.util
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, load_bench


@pytest.fixture(scope="module")
def efficiency():
    return load_bench("async_efficiency.py")


@pytest.fixture(scope="module")
def wait():
    """Registered in sys.modules while it loads: its dataclass reads its own module's namespace."""
    name = "bench_annotator_wait"
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "annotator_wait.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def _run(arm: str, seed: int, points: list[tuple[int, float]], *, unevaluated: int = 0) -> dict:
    rounds = [{"labelled": x, "accuracy": y, "test_count": 100} for x, y in points]
    rounds += [{"labelled": 999, "accuracy": 0.0, "test_count": 0}] * unevaluated  # never evaluated: left out
    return {"dataset": "atis", "arm": arm, "seed": seed, "pool_size": 1000, "wall_seconds": 60.0, "rounds": rounds}


def test_the_area_is_the_mean_of_the_interpolated_curve_over_the_range(efficiency):
    x, y = np.array([10.0, 20.0, 30.0]), np.array([0.5, 0.7, 0.8])
    assert efficiency.auc(x, y, 10, 30) == pytest.approx((6 + 7.5) / 20)
    # A range inside the curve: read at 15 (0.6) and 25 (0.75) by interpolation.
    assert efficiency.auc(x, y, 15, 25) == pytest.approx((3.25 + 3.625) / 10)
    assert efficiency.auc(x, y, 20, 20) == pytest.approx(0.7)


def test_async_and_sync_are_compared_on_the_labels_both_cover(efficiency):
    results = [
        _run("sync", 0, [(10, 0.5), (20, 0.7), (30, 0.8)]),
        # Asynchronous rounds land elsewhere: read linearly between 10 and 40 labels.
        _run("async", 0, [(10, 0.5), (40, 0.9)], unevaluated=1),
        _run("sync", 1, [(10, 0.5), (20, 0.6)]),
        _run("async", 1, [(10, 0.5), (20, 0.62)]),
        _run("sync", 2, [(10, 0.5), (20, 0.6)]),  # no asynchronous run of seed 2: not paired
    ]
    summary = efficiency.summarise(results)["atis"]
    seed0, seed1 = summary["seeds"]
    assert [seed0["seed"], seed1["seed"]] == [0, 1]
    assert seed0["range"] == [10, 30]
    assert seed0["auc_sync"] == pytest.approx(0.675)
    assert seed0["auc_async"] == pytest.approx((0.5 + 0.5 + 0.4 * 20 / 30) / 2)
    assert seed0["async_at_sync_labels"] == pytest.approx([0.5, 0.5 + 0.4 / 3, 0.5 + 0.8 / 3])
    assert seed1["auc_async"] - seed1["auc_sync"] == pytest.approx(0.01)
    differences = [seed0["auc_async"] - seed0["auc_sync"], 0.01]
    assert summary["auc_difference_mean"] == pytest.approx(np.mean(differences))
    assert summary["meets_target"] is False  # -1.6 points on average: more than 0.5 below
    assert efficiency.summarise(results[2:4])["atis"]["meets_target"] is True


def _label(index: int, wait_s: float, next_ms: float, *, fetches=(), suggestion=None) -> dict:
    return {
        "index": index,
        "wait_s": wait_s,
        "next_text_ms": next_ms,
        "post_ms": 30.0,
        "fetch_ms": list(fetches),
        "correct_suggestion": suggestion,
    }


def test_waits_are_read_after_the_first_batch_against_the_targets(wait):
    labels = [
        _label(0, 3.0, 3100, fetches=(20, 25)),  # the first batch: the seed set, no model yet
        _label(1, 0.0, 30),
        _label(2, 0.0, 40, fetches=(100,), suggestion=True),
        _label(3, 2.0, 2100, fetches=(50, 60, 70), suggestion=False),
        _label(4, 0.0, 60, suggestion=True),
        _label(5, 0.0, 70),
    ]
    summary = wait.summarise({"labels": labels, "rounds": [{"accuracy": 0.9}, {"accuracy": None}]}, seed_size=2)
    after = summary["after_first_batch"]
    assert (summary["first_batch_wait_s"], summary["first_text_s"], summary["total_wait_s"]) == (3.0, 3.1, 5.0)
    assert (after["labels"], after["total_wait_s"], after["wait_s_max"], after["waits_over_1s"]) == (4, 2.0, 2.0, 1)
    assert after["next_text_ms_p50"] == 65.0
    assert after["next_text_ms_p95"] == pytest.approx(70 + 0.85 * 2030, abs=0.1)  # numpy's linear percentile
    assert (after["queue_requests"], after["queue_request_ms_p50"]) == (4, 65.0)
    assert after["suggestion_correct"] == pytest.approx(2 / 3, abs=1e-3)
    assert after["meets_wait_target"] is False and after["meets_next_text_target"] is False
    assert summary["rounds_trained"] == 1
    quick = [_label(i, 0.0, 50) for i in range(2)] + [_label(i, 0.9, 150) for i in range(2, 6)]
    met = wait.summarise({"labels": quick, "rounds": []}, seed_size=2)["after_first_batch"]
    assert met["meets_wait_target"] is True and met["meets_next_text_target"] is True


def test_a_smoke_subset_is_seeded_and_gold_labels_match_the_texts_as_stored(wait, tmp_path, monkeypatch):
    data = wait.bench_data
    folder = tmp_path / "data" / "atis"
    folder.mkdir(parents=True)
    for split, per_class in (("train", 100), ("test", 60)):  # headerless, sorted by label, as ATIS
        with open(folder / f"atis_intents_{split}.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(
                (f"atis_{c}", f" {split} text {i}  of intent {c}, with a comma")
                for c in range(3)
                for i in range(per_class)
            )
    monkeypatch.setattr(data, "DATA", tmp_path / "data")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, again = data.split_files("atis", tmp_path / "a", limit=200), data.split_files("atis", tmp_path / "b", 200)
    rows = list(csv.reader(first["train"].open(encoding="utf-8")))
    assert len(rows) == 200 and rows == list(csv.reader(again["train"].open(encoding="utf-8")))
    assert {label for label, _ in rows} == {"atis_0", "atis_1", "atis_2"}  # a random draw, not the first 200 rows
    assert len(list(csv.reader(first["test"].open(encoding="utf-8")))) == 100
    assert len(list(csv.reader(data.split_files("atis", tmp_path / "a")["train"].open(encoding="utf-8")))) == 300
    gold = data.gold_labels("atis")
    # ATIS texts start with a space; the pool keeps them stripped, the lookup normalises both.
    assert gold[data.normalise("train text 7 of intent 2, with a comma")] == "atis_2"
    assert all(gold[data.normalise(text)] == label for label, text in rows)
