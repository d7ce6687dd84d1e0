"""The CLI many-class check's data (bench/cli_many_classes.py): the subset it imports decides what the
recorded numbers mean, so its draw is checked on a hand-made CLINC150-shaped folder."""

from __future__ import annotations

import csv
import pathlib
import tempfile

import pytest

from tests.helpers import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("cli_many_classes.py")


@pytest.fixture
def clinc(tmp_path):
    folder = tmp_path / "clinc150"
    folder.mkdir()
    for split, per_class in (("train", 4), ("test", 2)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "text"])
            for c in range(10):
                writer.writerows(
                    (f"intent_{c}", f"{split} text {i} of intent {c}, with a comma") for i in range(per_class)
                )
    return folder


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_subset_keeps_every_row_of_the_drawn_intents_and_nothing_else(bench, clinc, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    subset = bench.write_subset(clinc, 3, seed=0, folder=out)
    train, test = _read(out / "train.csv"), _read(out / "test.csv")
    assert len(subset["intents"]) == 3
    assert {row["label"] for row in train} == {row["label"] for row in test} == set(subset["intents"])
    assert (subset["train"], subset["test"]) == (len(train), len(test)) == (12, 6)
    assert all(row["text"].endswith("with a comma") for row in train)  # quoting survives


def test_subset_draw_is_seeded(bench, clinc, tmp_path):
    draws = []
    for seed in (0, 0, 1):
        out = tmp_path / f"seed{len(draws)}"
        out.mkdir()
        draws.append(bench.write_subset(clinc, 4, seed=seed, folder=out)["intents"])
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]


@pytest.mark.parametrize("classes", [1, 11])
def test_subset_refuses_a_class_count_the_data_cannot_give(bench, clinc, tmp_path, classes):
    with pytest.raises(SystemExit, match=f"--classes {classes}: choose 2 to 10"):
        bench.write_subset(clinc, classes, seed=0, folder=tmp_path)


@pytest.fixture
def recorded(tmp_path):
    """A recorded result: JSON, log and plot that a failed or refused run must leave alone."""
    out = tmp_path / "results" / "cli.json"
    out.parent.mkdir()
    files = {out: "{}", out.with_suffix(".log"): "recorded log", out.with_suffix(".png"): "png"}
    for path, text in files.items():
        path.write_text(text)
    return out, files


@pytest.fixture(autouse=True)
def temporary_folders_in_tmp_path(tmp_path, monkeypatch):
    """The script's work folders (kept after a failed run) land under the test's tmp_path."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))


def test_a_refused_class_count_leaves_the_recorded_files(bench, clinc, recorded, monkeypatch):
    out, files = recorded
    monkeypatch.setattr("sys.argv", ["cli_many_classes.py", "--classes", "1", "--data", str(clinc), "--out", str(out)])
    with pytest.raises(SystemExit, match="--classes 1"):
        bench.main()
    assert {path: path.read_text() for path in files} == files


def test_a_failed_run_leaves_the_recorded_files_and_names_its_own(bench, clinc, recorded, monkeypatch, capsys):
    out, files = recorded

    def failing(args, workdir, subset):
        (workdir / "run.log").write_text("half a run")
        raise RuntimeError("the stack died")

    monkeypatch.setattr(bench, "measure", failing)
    monkeypatch.setattr("sys.argv", ["cli_many_classes.py", "--classes", "3", "--data", str(clinc), "--out", str(out)])
    with pytest.raises(RuntimeError, match="the stack died"):
        bench.main()
    assert {path: path.read_text() for path in files} == files
    kept = capsys.readouterr().err.split("(log: ")[1].rstrip(")\n")
    assert pathlib.Path(kept).read_text() == "half a run"
