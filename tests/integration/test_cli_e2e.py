"""The CLI against the real pool, trainer, scorer and coordinator servers (in process, tiny BERT)."""

from __future__ import annotations

import csv
import json
import re

import pytest

from lesslabels.cli.main import main as cli
from lesslabels.v1 import run_pb2
from tests.stack import LABELS, load_toy_dataset, wait_for
from tests.humanrun import gold, run_flags, run_state


@pytest.fixture
def stack(real_stack):
    load_toy_dataset(real_stack.pool_address)
    return real_stack


def _wait_state(stack, run_id, state, timeout=180):
    return wait_for(
        lambda: (r := run_state(stack, run_id)).state == state and r,
        timeout,
        0.2,
        f"run {run_id} to be {run_pb2.RunState.Name(state)}",
    )


def waiting_again_model(stack, run_id) -> str:
    """The checkpoint of the run's round 0 (the model that chose round 1's batch)."""
    from lesslabels.client import CoordinatorClient

    with CoordinatorClient(stack.coordinator_address) as coordinator:
        return next(r.checkpoint_id for r in coordinator.get_run(run_id).rounds if r.index == 0)


def test_asynchronous_human_run_through_label_export_and_import(stack, tiny_bert_dir, tmp_path, capsys):
    """The default for --oracle human: files are cut from the run's queue, leased to whoever exports
    them, and the run fine-tunes in the background while the next file is exported and labelled."""
    client = ["--coordinator-address", stack.coordinator_address]
    scorer = ["--scorer-address", stack.scorer_address]
    assert cli(["run", *run_flags(tiny_bert_dir), "--oracle", "human", "--refill-every", "4", *client]) == 0
    run_id = int(re.search(r"started run (\d+)", capsys.readouterr().out).group(1))
    _wait_state(stack, run_id, run_pb2.RUN_STATE_WAITING_FOR_LABELS)
    ann, ben = tmp_path / "ann.csv", tmp_path / "ben.csv"
    assert cli(["label", "export", str(run_id), str(ann), "--annotator", "ann", *client, *scorer]) == 0
    assert cli(["label", "export", str(run_id), str(ben), "--annotator", "ben", *client, *scorer]) == 0
    capsys.readouterr()
    ann_rows, ben_rows = list(csv.DictReader(ann.open())), list(csv.DictReader(ben.open()))
    assert len(ann_rows) == 8 and len(ben_rows) == 4  # the 12 seeds, split: nobody gets another's texts
    assert {r["sample_id"] for r in ann_rows}.isdisjoint(r["sample_id"] for r in ben_rows)

    def fill(rows, path, who):
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["sample_id", "label"])
            writer.writerows([r["sample_id"], gold(r["text"])] for r in rows)
        code = cli(["label", "import", str(run_id), str(path), "--annotator", who, *client])
        # Labels in flight when the run completes are refused (the run ended): nothing else may fail.
        assert code == 0 or run_state(stack, run_id).state == run_pb2.RUN_STATE_COMPLETED
        return capsys.readouterr().out

    fill(ann_rows, ann, "ann")
    fill(ben_rows, ben, "ben")

    # The seed set is labelled: round 0 fine-tunes in the background; the queue is refilled meanwhile,
    # ranked by the fast head, whose suggestions the next file carries.
    def next_file():
        assert cli(["label", "export", str(run_id), str(ann), "--annotator", "ann", *client, *scorer]) == 0
        return capsys.readouterr().out, list(csv.DictReader(ann.open()))

    out, rows = wait_for(lambda: (f := next_file())[1] and f, 120, 0.3, "a refilled queue")
    assert "suggestions from model fast head at 12 labels" in out
    assert all(r["predicted_label"] in LABELS and r["model"] == "fast head at 12 labels" for r in rows)
    # Label until the run ends (max 2 rounds: one more fine-tune after 8 more labels).
    for _ in range(30):
        if run_state(stack, run_id).state == run_pb2.RUN_STATE_COMPLETED:
            break
        _, rows = next_file()
        if rows:
            fill(rows, ann, "ann")
        else:
            wait_for(lambda: next_file()[1] or run_state(stack, run_id).state == run_pb2.RUN_STATE_COMPLETED, 120, 0.5)
    done = _wait_state(stack, run_id, run_pb2.RUN_STATE_COMPLETED)
    assert done.round == 1 and done.labelled_count >= 20


def test_human_mode_through_label_export_and_import(stack, tiny_bert_dir, tmp_path, capsys):
    client = ["--coordinator-address", stack.coordinator_address]
    assert cli(["run", *run_flags(tiny_bert_dir), "--oracle", "human", "--no-async", *client]) == 0
    run_id = int(re.search(r"started run (\d+)", capsys.readouterr().out).group(1))
    _wait_state(stack, run_id, run_pb2.RUN_STATE_WAITING_FOR_LABELS)
    assert cli(["status", str(run_id), *client]) == 0
    assert f"lesslabels label export {run_id}" in capsys.readouterr().out

    batch = tmp_path / "batch.csv"
    assert cli(["label", "export", str(run_id), str(batch), *client]) == 0
    assert "wrote 12 samples" in capsys.readouterr().out
    rows = list(csv.DictReader(batch.open()))
    assert len(rows) == 12 and all(not r["label"] for r in rows)

    # A file with an id outside the batch and one with an unknown label are refused whole.
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(f"sample_id,label\n{rows[0]['sample_id']},{gold(rows[0]['text'])}\n999999,flight\n")
    assert cli(["label", "import", str(run_id), str(wrong), *client]) == 1
    assert "not in the pending batch" in capsys.readouterr().err
    wrong.write_text(f"sample_id,label\n{rows[0]['sample_id']},weather\n")
    assert cli(["label", "import", str(run_id), str(wrong), *client]) == 1
    assert "unknown label(s) 'weather'" in capsys.readouterr().err

    # Half the batch, twice: the second import changes nothing; the run keeps waiting.
    half = tmp_path / "half.csv"
    with half.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sample_id", "label", "text"])
        for r in rows[:6]:
            writer.writerow([r["sample_id"], gold(r["text"]), r["text"]])
    assert cli(["label", "import", str(run_id), str(half), *client]) == 0
    assert "6 labels recorded" in capsys.readouterr().out
    assert cli(["label", "import", str(run_id), str(half), *client]) == 0
    out = capsys.readouterr().out
    assert "0 labels recorded" in out and "6 of the batch still unlabelled" in out
    assert run_state(stack, run_id).state == run_pb2.RUN_STATE_WAITING_FOR_LABELS

    # The rest as JSONL, the already-labelled half included again: the run goes on.
    full = tmp_path / "full.jsonl"
    full.write_text(
        "".join(json.dumps({"sample_id": int(r["sample_id"]), "label": gold(r["text"])}) + "\n" for r in rows)
    )
    assert cli(["label", "import", str(run_id), str(full), *client]) == 0
    assert "0 of the batch still unlabelled" in capsys.readouterr().out
    waiting_again = wait_for(
        lambda: (r := run_state(stack, run_id)).round == 1 and r.state == run_pb2.RUN_STATE_WAITING_FOR_LABELS and r,
        180,
        0.2,
        "round 1's batch",
    )
    assert waiting_again.labelled_count == 12

    # Round 1's batch comes with the round-0 model's suggestions (CSV and JSONL alike).
    scorer = ["--scorer-address", stack.scorer_address]
    for name in ("round1.csv", "round1.jsonl"):
        assert cli(["label", "export", str(run_id), str(tmp_path / name), *client, *scorer]) == 0
        assert "suggestions from model" in capsys.readouterr().out
    suggested = list(csv.DictReader((tmp_path / "round1.csv").open()))
    as_json = [json.loads(line) for line in (tmp_path / "round1.jsonl").read_text().splitlines()]
    assert len(suggested) == len(as_json) == 8
    checkpoint = waiting_again_model(stack, run_id)
    for row, obj in zip(suggested, as_json, strict=True):
        assert row["predicted_label"] in LABELS and row["model"] == checkpoint and not row["label"]
        assert 1 / len(LABELS) <= float(row["probability"]) <= 1.0
        assert obj["predicted_label"] == row["predicted_label"] and obj["probability"] == float(row["probability"])
        assert obj["uncertainty"] == float(row["uncertainty"])
    assert cli(["cancel", str(run_id), *client]) == 0
    assert "state=cancelled" in capsys.readouterr().out
    assert cli(["report", str(run_id), "--no-plot", "--format", "json", *client]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["labels"] for r in report["rounds"]] == [12]


def test_simulated_run_watch_report_and_unknown_run(stack, tiny_bert_dir, tmp_path, capsys):
    client = ["--coordinator-address", stack.coordinator_address]
    assert cli(["run", *run_flags(tiny_bert_dir), "--watch", "--no-progress", *client]) == 0
    out = capsys.readouterr().out
    assert "state=completed" in out and "stopped: round limit 2 reached" in out
    run_id = int(re.search(r"started run (\d+)", out).group(1))
    table = out[out.index("round  labels") :].splitlines()
    assert [line.split()[:2] for line in table[2:4]] == [["0", "12"], ["1", "20"]]
    png = tmp_path / "r.png"
    assert cli(["report", str(run_id), "--plot", str(png), *client]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert cli(["status", "424242", *client]) == 1
    err = capsys.readouterr().err
    assert "424242" in err and "NOT_FOUND" in err and "Traceback" not in err
