"""The labelling page's views for wide data and ended runs: label order before a model, the
collapsed per-class table, label sets of 150 names, the lasting banner of an ended run. A fake
backend for the pages; the real in-process stack for the queue's order."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from lesslabels.cli.main import main as cli
from lesslabels.client import CoordinatorClient
from lesslabels.web.app import create_app
from lesslabels.web.backend import Addresses, SdkBackend
from lesslabels.web.perclass import per_class_table
from lesslabels.web.picker import LOW_CONFIDENCE, first_batch_order
from tests.helpers import import_rows
from tests.humanrun import run_flags, runs
from tests.stack import wait_for

MANY = [f"intent_{i:03d}" for i in range(150)]


def test_first_batch_order_is_most_frequent_first_then_a_to_z():
    labels = ["flight", "Airfare", "abbreviation", "ground_service"]
    assert first_batch_order(labels, {}) == (["abbreviation", "Airfare", "flight", "ground_service"], "alphabetical")
    assert first_batch_order(labels, {"flight": 0}) == (
        ["abbreviation", "Airfare", "flight", "ground_service"],
        "alphabetical",
    )
    order, how = first_batch_order(labels, {"ground_service": 5, "flight": 2, "abbreviation": 2, "unknown": 9})
    assert (order, how) == (["ground_service", "abbreviation", "flight", "Airfare"], "frequency")


def f1_round(index: int, scores: dict[str, float]) -> dict:
    return {"index": index, "per_class_f1": scores}


def test_per_class_table_shows_the_worst_and_best_and_folds_the_rest():
    scores = {label: (i % 50) / 50 for i, label in enumerate(MANY)}
    rounds = [f1_round(i, {}) if i == 2 else f1_round(i, scores) for i in range(7)]
    table = per_class_table(rounds)
    assert table["rounds"] == [3, 4, 5, 6] and table["count"] == 150  # rounds without F1 are not columns
    worst = [row["label"] for row in table["worst"]]
    best = [row["label"] for row in table["best"]]
    assert worst == ["intent_000", "intent_050", "intent_100", "intent_001", "intent_051"]
    assert best == ["intent_149", "intent_099", "intent_049", "intent_148", "intent_098"]
    assert len(table["rest"]) == 140 and not {r["label"] for r in table["rest"]} & set(worst + best)
    assert table["worst"][0]["f1"] == [0.0, 0.0, 0.0, 0.0]

    # A class missing from the latest round counts as worst; a few classes are all shown.
    few = per_class_table([f1_round(0, {"a": 0.5, "b": 0.9, "c": 0.1}), f1_round(1, {"a": 0.5, "b": 0.9})])
    assert [r["label"] for r in few["worst"]] == ["c", "a", "b"] and few["best"] == few["rest"] == []
    assert few["worst"][0]["f1"] == [0.1, None]
    assert per_class_table([f1_round(0, {})])["count"] == 0


class WideBackend:
    """A run with 150 classes, a dataset with 150 labels; ``state`` says how the run stands."""

    def __init__(self, state: str = "WAITING_FOR_LABELS"):
        self.state = state

    def run_view(self) -> dict:
        ended = self.state in ("COMPLETED", "CANCELLED", "FAILED")
        return {
            "id": 7,
            "dataset": "many",
            "state": self.state,
            "step": "LABEL",
            "round": 1,
            "labelled": 20,
            "pool_size": 40,
            "human": True,
            "ended": ended,
            "strategy": "entropy",
            "error": "",
            "stop_reason": "cancelled by ada" if ended else "",
        }

    def list_runs(self):
        return [self.run_view()]

    def run_detail(self, run_id):
        scores = {label: i / 150 for i, label in enumerate(MANY)}
        rounds = [
            {
                "index": 0,
                "labelled": 20,
                "accuracy": 0.5,
                "macro_f1": 0.4,
                "per_class_f1": scores,
                "checkpoint_id": "c0",
                "validation_accuracy": None,
            }
        ]
        return {"run": self.run_view(), "rounds": rounds, "kept": rounds[0]}

    def list_datasets(self):
        return [{"name": "many", "description": "", "labels": MANY, "train": 40, "test": 150, "dev": 0, "labelled": 0}]


def test_run_page_keeps_150_classes_out_of_the_rounds_table():
    page = TestClient(create_app(WideBackend())).get("/runs/7").text
    rounds_table = page[page.index('<table id="rounds">') : page.index("</table>", page.index('<table id="rounds">'))]
    assert len(re.findall(r"<th[ >]", rounds_table)) == 6 and "intent_" not in rounds_table
    unfolded = page[page.index('<table id="per-class">') : page.index('<details id="more-classes">')]
    assert re.findall(r'<th scope="row">(intent_\d+)</th>', unfolded) == [
        *("intent_000", "intent_001", "intent_002", "intent_003", "intent_004"),
        *("intent_149", "intent_148", "intent_147", "intent_146", "intent_145"),
    ]
    assert "The other 140 of 150 classes</summary>" in page
    folded = page[page.index('<details id="more-classes">') :]
    assert len(re.findall(r'<th scope="row">intent_\d+</th>', folded)) == 140


def test_datasets_page_folds_a_label_set_of_150_names():
    page = TestClient(create_app(WideBackend())).get("/datasets").text
    summary = re.search(r"<summary>(.*?)</summary>", page).group(1)
    assert summary == "150 labels: intent_000, intent_001, intent_002, intent_003, intent_004, intent_005 and 144 more"
    assert "intent_149" in page  # every name is still there, behind the summary


@pytest.mark.parametrize("state", ["CANCELLED", "COMPLETED", "FAILED"])
def test_label_page_of_an_ended_run_shows_a_banner_and_no_task(state):
    page = TestClient(create_app(WideBackend(state))).get("/runs/7/label").text
    banner = re.search(r'<div id="banner" class="banner" role="alert"([^>]*)>(.*?)</div>', page, re.S)
    assert banner.group(1) == "" and f"Run 7 is {state.lower()}: cancelled by ada." in banner.group(2)
    assert 'data-ended="true"' in page and '<article id="task" hidden>' in page
    assert '<p id="key-hints" class="keys" hidden>' in page


def test_label_page_of_an_open_run_has_a_hidden_banner_and_an_aria_picker():
    page = TestClient(create_app(WideBackend())).get("/runs/7/label").text
    assert re.search(r'<div id="banner" class="banner" role="alert" hidden>\s*</div>', page)
    assert 'data-ended="false"' in page
    assert re.search(r'<input id="filter"[^>]*role="combobox"[^>]*aria-controls="options"', page, re.S)
    assert 'aria-activedescendant=""' in page and '<ul id="options" class="options" role="listbox"' in page
    assert re.search(r'<div id="announce" class="visually-hidden" aria-live="polite"', page)


def test_queue_orders_the_first_batch_by_frequency_in_the_labelled_data(real_stack, tiny_bert_dir):
    # Test gold: ground_service 3 times, flight twice, the rest once; the train texts carry no label.
    test_rows = [("ground_service", f"ground {i}") for i in range(3)] + [("flight", "fly 0"), ("flight", "fly 1")]
    test_rows += [("airfare", "fare 0"), ("Abbreviation", "abbr 0")]
    import_rows(real_stack.pool_address, "skewed", test_rows, split="test")
    import_rows(real_stack.pool_address, "skewed", [("", f"text number {i}") for i in range(30)], split="train")
    flags = run_flags(tiny_bert_dir)
    flags[flags.index("toy")] = "skewed"
    assert cli(["run", *flags, "--oracle", "human", "--coordinator-address", real_stack.coordinator_address]) == 0
    run_id = max(r.id for r in runs(real_stack))
    backend = SdkBackend(Addresses(real_stack.coordinator_address, real_stack.pool_address, real_stack.scorer_address))
    try:
        with CoordinatorClient(real_stack.coordinator_address) as coordinator:
            wait_for(lambda: coordinator.pending_labels(run_id).samples, 120, 0.2, "the seed batch")
        queue = TestClient(create_app(backend)).get(f"/api/runs/{run_id}/queue").json()
    finally:
        backend.close()
    assert (queue["order"], queue["model"], queue["low_confidence"]) == ("frequency", "", LOW_CONFIDENCE)
    assert queue["run"]["ended"] is False and len(queue["items"]) == 12
    for item in queue["items"]:
        assert [o["label"] for o in item["options"]] == ["ground_service", "flight", "Abbreviation", "airfare"]
        assert item["suggestion"] == "" and all(o["probability"] is None for o in item["options"])
