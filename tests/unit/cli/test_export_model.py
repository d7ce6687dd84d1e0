"""``lesslabels export-model``: a run's model or a checkpoint written as a portable folder; the README's
ONNX example run as written in a virtualenv without lesslabels; each bad input named."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from lesslabels.cli import main as cli_main
from lesslabels.common.checkpoints import CheckpointStore
from tests.readme_blocks import python_block
from tests.scorer_checkpoints import LABELS, publish_tiny_checkpoint

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("few_torch_threads")

RUN = 5


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, tiny_bert_dir) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("checkpoints")
    publish_tiny_checkpoint(CheckpointStore(folder), tiny_bert_dir, run_id=RUN, pooling="mean")
    return folder


def export(*args: str) -> int:
    return cli_main.main(["export-model", *args])


def test_export_model_writes_the_model_a_run_keeps_in_both_formats(store_dir, tmp_path, capsys):
    out = tmp_path / "flights-model"
    assert export(str(RUN), str(out), "--checkpoint-dir", str(store_dir)) == 0
    kept = CheckpointStore(store_dir).best(RUN)
    printed = capsys.readouterr().out
    assert f"exported checkpoint {kept.id} (3 labels) to {out}" in printed
    assert "onnx" in printed and "sentence-transformers" in printed
    assert sorted(p.name for p in out.iterdir()) == ["onnx", "sentence-transformers"]
    assert json.loads((out / "onnx" / "manifest.json").read_text())["checkpoint_id"] == kept.id


def test_the_checkpoint_store_comes_from_the_environment_and_one_format_is_written(
    store_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("LESSLABELS_CHECKPOINT_DIR", str(store_dir))
    checkpoint_id = CheckpointStore(store_dir).latest(RUN).id
    assert export(f"ckpt-{checkpoint_id}", str(tmp_path / "m"), "--format", "onnx") == 0
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["onnx"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["20990101T000000-deadbeef"], 1, "checkpoint '20990101T000000-deadbeef' not found"),
        (["42"], 1, "run 42 has no published checkpoint"),
        (["run-0"], 1, "a run number is 1 or more"),
        (["20990101T000000-deadbeef", "--latest"], 1, "--latest takes a run (N or run-N)"),
        ([str(RUN), "--format", "tflite"], 2, "argument --format: invalid choice: 'tflite'"),
    ],
)
def test_a_bad_checkpoint_run_or_format_is_named_and_nothing_is_written(
    store_dir, tmp_path, capsys, args, code, message
):
    out = tmp_path / "out"
    assert export(args[0], str(out), *args[1:], "--checkpoint-dir", str(store_dir)) == code
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_checkpoint_store_is_named(tmp_path, capsys):
    assert export(str(RUN), str(tmp_path / "out"), "--checkpoint-dir", str(tmp_path / "nowhere")) == 1
    assert f"no checkpoint store at {tmp_path / 'nowhere'}: give --checkpoint-dir" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_non_empty_out_dir_needs_force_and_force_keeps_a_folder_that_is_not_an_export(store_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert export(str(RUN), str(out), "--checkpoint-dir", str(store_dir)) == 1
    assert "is not empty: give --force to replace an earlier export there" in capsys.readouterr().err
    assert export(str(RUN), str(out), "--checkpoint-dir", str(store_dir), "--force") == 1
    assert "holds more than an earlier export ('thesis.tex')" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["thesis.tex"] and (out / "thesis.tex").read_text() == "years of work"


def test_an_out_dir_under_a_file_is_named(store_dir, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "model"
    assert export(str(RUN), str(out), "--checkpoint-dir", str(store_dir)) == 1
    assert f"cannot write {out}: " in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "mine"


def test_a_missing_out_dir_argument_is_a_usage_error(store_dir, capsys):
    assert export(str(RUN), "--checkpoint-dir", str(store_dir)) == 2
    assert "the following arguments are required: OUT_DIR" in capsys.readouterr().err


def test_the_readmes_onnx_example_runs_without_lesslabels_and_prints_the_scorers_predictions(store_dir, tmp_path):
    """The README's block, exactly as written, in a virtualenv holding only onnxruntime, tokenizers
    and numpy (``make onnx-runtime`` builds .venv-onnx; LESSLABELS_ONNX_PYTHON names its python)."""
    from lesslabels.modeling import inference

    python = os.environ.get("LESSLABELS_ONNX_PYTHON", "")
    if not python:
        pytest.skip(
            "LESSLABELS_ONNX_PYTHON is not set to a python with only onnxruntime, tokenizers, numpy (make onnx-runtime)"
        )
    block = python_block('folder = "flights-model/onnx"')
    assert export(str(RUN), str(tmp_path / "flights-model"), "--checkpoint-dir", str(store_dir)) == 0
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    probe = subprocess.run(
        [python, "-I", "-c", "import importlib.util as u; print(u.find_spec('lesslabels'), u.find_spec('torch'))"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert probe.stdout.split() == ["None", "None"]  # a clean environment: neither lesslabels nor torch
    out = subprocess.run(
        [python, "-I", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert len(rows) == 2
    checkpoint = CheckpointStore(store_dir).best(RUN)
    scorer = inference.load_classifier(
        checkpoint.path, labels=LABELS, device=torch.device("cpu"), max_length=16, precision="fp32"
    )
    texts = [text for _, _, text in rows]
    expected = inference.forward(scorer, inference.tokenize(scorer, texts).input_ids, full_precision=True).probabilities
    assert [label for label, _, _ in rows] == [LABELS[i] for i in np.argmax(expected, 1)]
    assert [float(p) for _, p, _ in rows] == pytest.approx(np.max(expected, 1), abs=1e-3)
