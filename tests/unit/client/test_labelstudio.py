"""Label Studio interchange and the Hugging Face exports: the formats Label Studio documents (its
"JSON" export of annotated tasks, its labelling config), a round trip through a real in-process
stack, and a checkpoint folder loaded by ``transformers.pipeline`` as is."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from lesslabels.cli.main import main as cli
from lesslabels.client import InvalidArgument, PendingLabels, PendingSample, PoolClient, Suggestion
from lesslabels.client.labelstudio import labelling_config, labels_from_export, tasks_from_batch
from tests.humanrun import gold, run_state, start_human_run
from tests.stack import LABELS, load_toy_dataset, wait_for


def _annotation(label, *, completed_by=1, cancelled=False, updated_at="2026-11-30T10:00:00.000000Z", **extra):
    """One annotation as Label Studio's JSON export writes it (fields from its task format docs)."""
    return {
        "id": extra.pop("id", 1001),
        "result": []
        if label is None
        else [
            {
                "id": "Dx_aB91ISN",
                "from_name": "label",
                "to_name": "text",
                "type": "choices",
                "origin": "manual",
                "value": {"choices": [label] if isinstance(label, str) else label},
            }
        ],
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": updated_at,
        "updated_at": updated_at,
        "lead_time": 4.288,
        "result_count": 0,
        "task": 1,
        "completed_by": completed_by,
        **extra,
    }


def _task(sample_id, annotations, task_id=None):
    return {
        "id": task_id or sample_id + 100,
        "data": {"text": f"text {sample_id}", "sample_id": sample_id},
        "annotations": annotations,
        "predictions": [],
        "created_at": "2026-11-30T09:00:00.000000Z",
        "updated_at": "2026-11-30T10:00:00.000000Z",
        "inner_id": 1,
        "total_annotations": len(annotations),
        "cancelled_annotations": 0,
        "project": 3,
    }


def test_labelling_config_has_one_single_choice_per_label_escaped():
    labels = ["flight", 'a<b & "c"', "ümlaut"]
    xml = labelling_config(labels)
    view = ET.fromstring(xml)
    text, choices = view.find("Text"), view.find("Choices")
    assert view.tag == "View" and (text.get("name"), text.get("value")) == ("text", "$text")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("label", "text", "single")
    assert [c.get("value") for c in choices.findall("Choice")] == labels
    assert "&lt;b &amp; &quot;c&quot;" in xml
    with pytest.raises(InvalidArgument, match="no label set"):
        labelling_config([])


def test_tasks_carry_text_sample_id_and_the_suggestion_as_a_prediction():
    pending = PendingLabels(
        run_id=1, round=2, labels=("a", "b"), samples=(PendingSample(5, "hi"), PendingSample(9, "yo")), remaining=2
    )
    suggestions = {5: Suggestion(5, "b", 0.8123456789, (("b", 0.8123456789), ("a", 0.1876543211)))}
    tasks = tasks_from_batch(pending, suggestions, "ckpt-model-7")
    assert tasks[0] == {
        "id": 5,
        "data": {"text": "hi", "sample_id": 5},
        "predictions": [
            {
                "model_version": "ckpt-model-7",
                "score": 0.812346,
                "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["b"]}}],
            }
        ],
    }
    assert tasks[1] == {"id": 9, "data": {"text": "yo", "sample_id": 9}}  # no suggestion: no prediction
    assert all("predictions" not in t for t in tasks_from_batch(pending, {}, ""))


def test_export_reading_takes_the_latest_kept_annotation_and_counts_what_it_ignores():
    export = [
        _task(1, [_annotation("a", completed_by=10)]),
        # A newer annotation wins over an older one; the list order does not matter.
        _task(
            2,
            [
                _annotation("b", completed_by=11, updated_at="2026-11-30T12:00:00.000000Z"),
                _annotation("a", completed_by=10, updated_at="2026-11-30T11:00:00.000000Z"),
            ],
        ),
        # A skip (was_cancelled) after a real annotation: the annotation stands, the skip is counted.
        _task(
            3,
            [
                _annotation("a", completed_by={"id": 12, "email": "ada@example.org", "first_name": "Ada"}),
                _annotation(None, cancelled=True, updated_at="2026-11-30T13:00:00.000000Z"),
            ],
        ),
        _task(4, [_annotation(None, cancelled=True)]),  # only skipped
        _task(5, []),  # never annotated
        _task(6, [_annotation(None)]),  # submitted with nothing chosen
    ]
    reading = labels_from_export(export)
    assert [(i.sample_id, i.label, i.annotator) for i in reading.labels] == [
        (1, "a", "10"),
        (2, "b", "11"),
        (3, "a", "ada@example.org"),
    ]
    assert (reading.cancelled, reading.unannotated, reading.tasks) == (2, 3, 6)
    # sample_id as a string (a CSV-imported task) is read as a number.
    task = _task(7, [_annotation("a")])
    task["data"]["sample_id"] = "7"
    assert labels_from_export([task]).labels[0].sample_id == 7


@pytest.mark.parametrize(
    "export, message",
    [
        ({"tasks": []}, "is a list of tasks; this is a dict"),
        ([{"id": 4, "text": "x", "label": "a"}], r"task 4 \(item 1\): no data.sample_id"),
        ([{"id": 4, "data": {"text": "x", "sample_id": "four"}}], "data.sample_id 'four' is not a number"),
        ([_task(1, [_annotation(["a", "b"])])], r"chooses 2 labels \('a', 'b'\)"),
        ([_task(1, "nope")], "'annotations' must be a list of objects"),
        ([_task(1, [_annotation("a")]), _task(1, [_annotation("b")], task_id=9)], "two tasks with different labels"),
        (["x"], "item 1: a task must be a JSON object"),
    ],
)
def test_malformed_exports_are_refused_naming_the_task(export, message):
    with pytest.raises(InvalidArgument, match=message):
        labels_from_export(export)


def test_import_command_refuses_unreadable_files(tmp_path, capsys):
    bad = tmp_path / "export.json"
    bad.write_text("[{")
    assert cli(["labelstudio", "import", "1", str(bad), "--coordinator-address", "127.0.0.1:1"]) == 1
    assert "not JSON" in capsys.readouterr().err
    assert cli(["labelstudio", "import", "1", str(tmp_path / "none.json")]) == 1
    assert "none.json: no such file" in capsys.readouterr().err
    nothing = tmp_path / "nothing.json"
    nothing.write_text(json.dumps([_task(1, [_annotation(None, cancelled=True)]), _task(2, [])]))
    assert cli(["labelstudio", "import", "1", str(nothing)]) == 1
    assert "1 cancelled/skipped annotations and 2 unannotated tasks ignored" in capsys.readouterr().err


def _ls_export(tasks, annotate):
    """What Label Studio exports after people worked on our tasks: ``annotate(task)`` gives the annotations."""
    return [{**t, "annotations": annotate(t), "project": 3} for t in tasks]


def test_round_trip_through_a_real_stack(real_stack, tiny_bert_dir, tmp_path, capsys):
    stack = real_stack
    load_toy_dataset(stack.pool_address)
    run_id = start_human_run(stack, tiny_bert_dir)
    addresses = ["--coordinator-address", stack.coordinator_address, "--scorer-address", stack.scorer_address]
    tasks_path = tmp_path / "tasks.json"
    assert cli(["labelstudio", "export", str(run_id), str(tasks_path), *addresses]) == 0
    out = capsys.readouterr().out
    assert "wrote 12 Label Studio tasks" in out and "no pre-annotations (no model yet)" in out
    config = ET.fromstring((tmp_path / "tasks.config.xml").read_text())
    assert sorted(c.get("value") for c in config.iter("Choice")) == sorted(LABELS)
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 12 and all("predictions" not in t for t in tasks)

    # People label all but the last task in Label Studio; the last one is skipped.
    last = tasks[-1]["data"]["sample_id"]
    person = {t["id"]: 1 + i % 2 for i, t in enumerate(tasks)}  # two annotators, alternating

    def first_pass(task):
        if task["data"]["sample_id"] == last:
            return [_annotation(None, cancelled=True)]
        return [_annotation(gold(task["data"]["text"]), completed_by=person[task["id"]])]

    export_path = tmp_path / "export.json"
    export_path.write_text(json.dumps(_ls_export(tasks, first_pass)))
    coord = ["--coordinator-address", stack.coordinator_address]
    assert cli(["labelstudio", "import", str(run_id), str(export_path), *coord]) == 0
    out = capsys.readouterr().out
    assert "11 labels recorded, 0 unchanged" in out and "from 2 annotator(s)" in out
    assert "1 cancelled/skipped annotations and 1 unannotated tasks ignored; 1 of the batch still unlabelled" in out
    # The same file again records nothing new.
    assert cli(["labelstudio", "import", str(run_id), str(export_path), *coord]) == 0
    assert "0 labels recorded, 11 unchanged" in capsys.readouterr().out
    # Exported again, the texts labelled so far carry their label, who gave it, when and how.
    pool = ["--pool-address", stack.pool_address]
    assert cli(["labelstudio", "export", str(run_id), str(tmp_path / "again.json"), *addresses, *pool]) == 0
    again = {t["data"]["sample_id"]: t["data"] for t in json.loads((tmp_path / "again.json").read_text())}
    first = tasks[0]["data"]["sample_id"]
    assert again[first]["label"] == gold(tasks[0]["data"]["text"]) and again[first]["annotator"] == str(person[first])
    assert again[first]["label_source"] == "human" and again[first]["labelled_at"].endswith("Z")
    assert "annotator" not in again[last] and "label" not in again[last]
    assert cli(["label", "export", str(run_id), str(tmp_path / "again.csv"), *addresses, *pool]) == 0
    rows = {int(r["sample_id"]): r for r in csv.DictReader((tmp_path / "again.csv").open(encoding="utf-8"))}
    assert (rows[first]["annotator"], rows[first]["label_source"]) == (str(person[first]), "human")
    assert rows[first]["labelled_at"] == again[first]["labelled_at"] and rows[last]["annotator"] == ""
    capsys.readouterr()

    # A label outside the set and a task not in the batch are refused, recording nothing.
    wrong = _ls_export(tasks, lambda t: [_annotation("no such label")] if t["data"]["sample_id"] == last else [])
    export_path.write_text(json.dumps(wrong))
    assert cli(["labelstudio", "import", str(run_id), str(export_path), *coord]) == 1
    assert "unknown label(s) 'no such label'" in capsys.readouterr().err
    stranger = [_task(999_999, [_annotation(LABELS[0])])]
    export_path.write_text(json.dumps(stranger))
    assert cli(["labelstudio", "import", str(run_id), str(export_path), *coord]) == 1
    assert "not in the pending batch" in capsys.readouterr().err

    # The last task is annotated later (the skip stays in the export): the batch completes, the run moves on.
    def second_pass(task):
        gold_label = gold(task["data"]["text"])
        if task["data"]["sample_id"] == last:
            # An export that names nobody: --annotator names them.
            return [_annotation(None, cancelled=True), _annotation(gold_label, completed_by=None, id=2002)]
        return [_annotation(gold_label, completed_by=person[task["id"]])]

    export_path.write_text(json.dumps(_ls_export(tasks, second_pass)))
    assert cli(["labelstudio", "import", str(run_id), str(export_path), *coord, "--annotator", "carol"]) == 0
    out = capsys.readouterr().out
    assert "1 labels recorded, 11 unchanged" in out and "0 of the batch still unlabelled" in out
    # Each label is kept with its Label Studio annotator (completed_by), in the pool's label history.
    with sqlite3.connect(tmp_path / "pool.db") as db:
        annotators = dict(db.execute("SELECT sample_id, annotator FROM label_events WHERE source = 'human'"))
    assert annotators == {
        t["data"]["sample_id"]: "carol" if t["data"]["sample_id"] == last else str(person[t["id"]]) for t in tasks
    }

    from lesslabels.v1 import run_pb2

    wait_for(
        lambda: (
            run_state(stack, run_id).state == run_pb2.RUN_STATE_WAITING_FOR_LABELS
            and run_state(stack, run_id).round == 1
        ),
        180,
        0.3,
        "the round-1 batch",
    )
    # The next batch goes out with the round-0 model's suggestions as pre-annotations.
    assert cli(["labelstudio", "export", str(run_id), str(tasks_path), *addresses]) == 0
    assert "pre-annotations from model" in capsys.readouterr().out
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 8
    for task in tasks:
        (prediction,) = task["predictions"]
        assert prediction["model_version"] and 0 < prediction["score"] <= 1
        assert prediction["result"][0]["value"]["choices"][0] in LABELS

    # The checkpoint the trainer published for round 0 is a folder transformers loads with the
    # mean-pooling classifier's code that it carries (tests/unit/modeling/test_pooling.py checks that outside lesslabels).
    from transformers import pipeline

    folder = tmp_path / "checkpoints" / f"ckpt-{tasks[0]['predictions'][0]['model_version']}"
    classify = pipeline("text-classification", model=str(folder), device="cpu", trust_remote_code=True)
    (result,) = classify(tasks[0]["data"]["text"])
    assert result["label"] == tasks[0]["predictions"][0]["result"][0]["value"]["choices"][0]
    assert result["score"] == pytest.approx(tasks[0]["predictions"][0]["score"], abs=1e-3)

    # The labelled set for Hugging Face datasets: text, label index, and the names beside it.
    hf = tmp_path / "toy.jsonl"
    assert cli(["export-hf", "--dataset", "toy", "-o", str(hf), "--pool-address", stack.pool_address]) == 0
    assert "wrote 12 labelled texts" in capsys.readouterr().out
    names = json.loads((tmp_path / "toy.labels.json").read_text())["label"]["names"]
    rows = [json.loads(line) for line in hf.read_text().splitlines()]
    assert sorted(names) == sorted(LABELS) and len(rows) == 12
    assert all(names[r["label"]] == gold(r["text"]) for r in rows)
    # Each row names its sample, who labelled it (Label Studio's completed_by), when and how.
    assert {r["sample_id"]: r["annotator"] for r in rows} == annotators
    assert {r["label_source"] for r in rows} == {"human"} and all(r["labelled_at"].endswith("Z") for r in rows)
    csv_path = tmp_path / "toy.csv"
    assert cli(["export-hf", "--dataset", "toy", "-o", str(csv_path), "--pool-address", stack.pool_address]) == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "text,label,sample_id,annotator,labelled_at,label_source" and len(lines) == 13
    with PoolClient(stack.pool_address, timeout=10) as pool:
        assert pool.get_dataset("toy").labelled_count == 12


def test_export_hf_of_a_dataset_without_labels_or_unknown_is_a_clear_error(pool_address, tmp_path, capsys):
    load_toy_dataset(pool_address)
    out = tmp_path / "x.jsonl"
    assert cli(["export-hf", "--dataset", "toy", "-o", str(out), "--pool-address", pool_address]) == 1
    assert "no labelled texts to export" in capsys.readouterr().err and not out.exists()
    assert cli(["export-hf", "--dataset", "nope", "-o", str(out), "--pool-address", pool_address]) == 1
    assert "dataset 'nope'" in capsys.readouterr().err


def test_a_checkpoint_folder_loads_in_a_transformers_pipeline_as_is(store_and_id, few_torch_threads):
    from transformers import pipeline

    from tests.scorer_checkpoints import LABELS as CHECKPOINT_LABELS

    store, checkpoint_id = store_and_id
    folder = store.get(checkpoint_id).path
    assert folder == store.root / f"ckpt-{checkpoint_id}"
    classifier = pipeline("text-classification", model=str(folder), device="cpu")
    (result,) = classifier("show me flights from boston to denver")
    assert result["label"] in CHECKPOINT_LABELS and 0 < result["score"] <= 1
    every = classifier("hello", top_k=None)
    assert sorted(r["label"] for r in every) == sorted(CHECKPOINT_LABELS)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_hf_export_loads_in_datasets_with_the_label_names(fmt, tmp_path):
    datasets = pytest.importorskip("datasets")
    from lesslabels.client import Sample, hfexport

    when = "2026-12-01T10:00:00Z"
    samples = [
        Sample(1, "to denver, please", "train", "flight", annotator="ada", label_source="human", labelled_at=when),
        Sample(2, 'a "quoted" fare', "train", "airfare", annotator="oracle", label_source="oracle", labelled_at=when),
    ]
    samples.append(Sample(3, "not labelled", "train", ""))
    names = hfexport.label_names(["flight", "airfare", "ground_service"], samples)
    path = tmp_path / f"set.{fmt}"
    path.write_text(hfexport.render(hfexport.hf_rows(samples, names), fmt), encoding="utf-8")
    declared = json.loads(hfexport.names_document(names))["label"]["names"]
    string = datasets.Value("string")
    features = datasets.Features(
        {
            "text": string,
            "label": datasets.ClassLabel(names=declared),
            "sample_id": datasets.Value("int64"),
            "annotator": string,
            "labelled_at": string,
            "label_source": string,
        }
    )
    loaded = datasets.load_dataset(
        "json" if fmt == "jsonl" else "csv", data_files=str(path), features=features, cache_dir=str(tmp_path / "c")
    )["train"]
    assert loaded.features["label"].names == ["flight", "airfare", "ground_service"]
    assert [(r["text"], loaded.features["label"].int2str(r["label"])) for r in loaded] == [
        ("to denver, please", "flight"),
        ('a "quoted" fare', "airfare"),
    ]

    # pyarrow's JSON reader takes an ISO time for a timestamp before the declared features make it
    # text again ("2026-12-01 10:00:00"): the same instant, in UTC, either way.
    def instant(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=dt.UTC)

    assert [(r["sample_id"], r["annotator"], r["label_source"], instant(r["labelled_at"])) for r in loaded] == [
        (1, "ada", "human", instant(when)),
        (2, "oracle", "oracle", instant(when)),
    ]
    with pytest.raises(InvalidArgument, match="format 'xlsx'"):
        hfexport.render([], "xlsx")
