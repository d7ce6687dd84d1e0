"""The Label Studio round trip against a REAL Label Studio server, started on loopback from its own
environment (``make labelstudio-server`` builds .venv-labelstudio; LESSLABELS_LABELSTUDIO_PYTHON names
its python): a project made through its SDK with our labelling config, our tasks pushed, annotations
(and a skip) posted through its API, its JSON export imported into lesslabels; then the next batch
goes there with the model's predictions. Skipped, saying why, without that environment."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from lesslabels.cli.main import main as cli
from tests.helpers import ROOT
from tests.humanrun import gold, run_state, start_human_run
from tests.stack import LABELS, load_toy_dataset, wait_for

pytestmark = pytest.mark.slow

DRIVER = ROOT / "tests" / "labelstudio_driver.py"
TOKEN = "0123456789abcdef0123456789abcdef01234567"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """(url, python): a Label Studio server on a free loopback port with a temporary data dir."""
    python = os.environ.get("LESSLABELS_LABELSTUDIO_PYTHON", "")
    if not python or not pathlib.Path(python).is_file():
        pytest.skip("LESSLABELS_LABELSTUDIO_PYTHON is not set to a python with label-studio (make labelstudio-server)")
    data = tmp_path_factory.mktemp("label-studio")
    port = _free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": "lesslabels@example.org",
        "LABEL_STUDIO_PASSWORD": "lesslabels-test-password",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
    }
    command = [
        str(pathlib.Path(python).with_name("label-studio")),
        "start",
        "--port",
        str(port),
        "--internal-host",
        "127.0.0.1",
        "--no-browser",
        "--enable-legacy-api-token",
    ]
    log = (data / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # the first start migrates a fresh database
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"label-studio exited ({server.returncode}): {(data / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"label-studio did not answer /health in 600 s: {(data / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(2)
        yield url, python
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _drive(label_studio, *args) -> str:
    url, python = label_studio
    done = subprocess.run(
        [python, str(DRIVER), url, TOKEN, *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_round_trip_through_a_real_label_studio(label_studio, real_stack, tiny_bert_dir, tmp_path, capsys):
    stack = real_stack
    load_toy_dataset(stack.pool_address)
    run_id = start_human_run(stack, tiny_bert_dir)
    addresses = ["--coordinator-address", stack.coordinator_address, "--scorer-address", stack.scorer_address]
    tasks_path, export_path = tmp_path / "tasks.json", tmp_path / "export.json"
    assert cli(["labelstudio", "export", str(run_id), str(tasks_path), *addresses]) == 0
    tasks = json.loads(tasks_path.read_text())
    project = _drive(label_studio, "project", tmp_path / "tasks.config.xml", tasks_path)

    # In Label Studio: every task labelled but one, which is skipped.
    answers = {str(t["data"]["sample_id"]): gold(t["data"]["text"]) for t in tasks}
    skipped = str(tasks[-1]["data"]["sample_id"])
    answers_path = tmp_path / "answers.json"
    answers_path.write_text(json.dumps({**answers, skipped: None}))
    _drive(label_studio, "annotate", project, answers_path)
    _drive(label_studio, "export", project, export_path)
    exported = json.loads(export_path.read_text())
    assert len(exported) == 12 and all(isinstance(t["annotations"][0]["completed_by"], (int, dict)) for t in exported)

    coord = ["--coordinator-address", stack.coordinator_address]
    assert cli(["labelstudio", "import", str(run_id), str(export_path), *coord]) == 0
    out = capsys.readouterr().out
    assert "11 labels recorded" in out and "1 cancelled/skipped annotations and 1 unannotated tasks ignored" in out
    assert "1 of the batch still unlabelled" in out
    assert cli(["labelstudio", "import", str(run_id), str(export_path), *coord]) == 0
    assert "0 labels recorded, 11 unchanged" in capsys.readouterr().out

    # The skipped task is labelled after all: the batch completes and the run moves on.
    answers_path.write_text(json.dumps({skipped: answers[skipped]}))
    _drive(label_studio, "annotate", project, answers_path)
    _drive(label_studio, "export", project, export_path)
    assert cli(["labelstudio", "import", str(run_id), str(export_path), *coord]) == 0
    assert "1 labels recorded, 11 unchanged" in capsys.readouterr().out

    from lesslabels.v1 import run_pb2

    wait_for(
        lambda: (
            run_state(stack, run_id).state == run_pb2.RUN_STATE_WAITING_FOR_LABELS
            and run_state(stack, run_id).round == 1
        ),
        300,
        0.5,
        "the round-1 batch",
    )
    # The next batch goes to Label Studio with the model's suggestions as its predictions.
    assert cli(["labelstudio", "export", str(run_id), str(tasks_path), *addresses]) == 0
    capsys.readouterr()
    tasks = json.loads(tasks_path.read_text())
    second = _drive(label_studio, "project", tmp_path / "tasks.config.xml", tasks_path)
    predictions = json.loads(_drive(label_studio, "predictions", second))
    assert sorted(map(int, predictions)) == sorted(t["data"]["sample_id"] for t in tasks)
    model = tasks[0]["predictions"][0]["model_version"]
    for found in predictions.values():
        (prediction,) = found
        assert prediction["model_version"] == model and 0 < prediction["score"] <= 1
        assert prediction["result"][0]["value"]["choices"][0] in LABELS
