"""The four services as real processes: ``LocalStack``, ``lesslabels up``, the CLI end to end, ``demo``.

A tiny random BERT stands in for MiniLM (the services accept any base model path), so these
check the plumbing and the output, not the accuracy.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from lesslabels.client import CoordinatorClient

from lesslabels.cli.main import main as cli
from lesslabels.cli.stack import LocalStack, StackError
from lesslabels.common.channels import wait_until_serving
from lesslabels.common import errors
from lesslabels.demo.data import synthetic_rows
from tests.helpers import ROOT as REPO_ROOT
from tests.helpers import import_rows

ROOT = str(REPO_ROOT)
CHILD_ENV = {"OMP_NUM_THREADS": "1", "LESSLABELS_LOG_LEVEL": "WARNING"}


def test_a_service_that_cannot_start_is_reported_with_its_log(tmp_path):
    # The pool cannot open its database: a folder sits where the SQLite file goes. (A taken port is
    # refused before anything starts: test_up.py.)
    state = tmp_path / "state"
    (state / "pool.sqlite3").mkdir(parents=True)
    stack = LocalStack(state, startup_timeout=60, env=CHILD_ENV)
    with pytest.raises(StackError, match=r"the pool service exited with code \d+ while starting") as info:
        stack.start()
    assert "pool.log" in str(info.value)
    assert stack.processes == {}  # the others were stopped too


def test_a_second_up_on_the_same_state_folder_is_refused_without_touching_it(tmp_path, capsys):
    state = tmp_path / "state"
    first = LocalStack(state)
    first.lock()  # the running stack's hold on its folder
    try:
        database = state / "pool.sqlite3"
        database.write_bytes(b"the live database")
        before = sorted(p.name for p in state.iterdir())
        assert cli(["up", "--state-dir", str(state), "--no-web"]) == 1
        err = capsys.readouterr().err
        assert f"another 'lesslabels up' (process {os.getpid()}) is already running on {state}" in err
        assert "Traceback" not in err
        assert database.read_bytes() == b"the live database"
        assert sorted(p.name for p in state.iterdir()) == before  # no logs, no checkpoints folder
    finally:
        first.unlock()
    again = LocalStack(state)
    again.lock()  # released: the folder can be taken again
    again.unlock()


def test_up_says_which_runs_it_resumed():
    from lesslabels.cli.stack import resumed_runs_text
    from lesslabels.client import Run, RunConfig

    assert resumed_runs_text([]) == "no unfinished runs to resume"
    runs = [
        Run(3, RunConfig("flights"), state="WAITING_FOR_LABELS", step="LABEL", round=2),
        Run(5, RunConfig("d"), state="RUNNING", step="TRAIN", round=0),
    ]
    assert resumed_runs_text(runs) == (
        "resumed 2 unfinished run(s): run 3 (flights, waiting for labels at round 2), run 5 (d, running at round 0)"
    )


def _up(tmp_path, *extra: str):
    """``lesslabels up`` as a child process on free ports (``extra``: more flags); returns (process, addresses)."""
    # ROOT first, then the caller's path (as LocalStack does), so the child imports this checkout.
    env = dict(os.environ, **CHILD_ENV, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lesslabels",
            "up",
            "--state-dir",
            str(tmp_path / "state"),
            "--pool-port",
            "0",
            "--trainer-port",
            "0",
            "--scorer-port",
            "0",
            "--coordinator-port",
            "0",
            "--web-port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    addresses, lines = {}, []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        match = re.match(r"\s+(pool|trainer|scorer|coordinator)\s+(\S+:\d+)$", line.rstrip())
        if match:
            addresses[match.group(1)] = match.group(2)
        web = re.match(r"\s+web\s+(http://\S+/)", line)
        if web:
            addresses["web"] = web.group(1)
        if line.startswith("ready") or time.monotonic() > deadline:
            break
    if len(addresses) != 5:
        proc.kill()
        pytest.fail("lesslabels up did not start:\n" + "".join(lines))
    assert "no unfinished runs to resume\n" in lines  # a fresh state folder
    return proc, addresses


@pytest.mark.slow
def test_up_then_the_cli_runs_active_learning_end_to_end(tmp_path, tiny_bert_dir, capsys):
    proc, addresses = _up(tmp_path, "--model-dir", str(tiny_bert_dir))
    web = addresses.pop("web")
    try:
        for address in addresses.values():
            wait_until_serving(address, timeout=5)
        with urllib.request.urlopen(web + "healthz", timeout=5) as reply:
            assert reply.status == 200
        train, test = synthetic_rows()
        import_rows(addresses["pool"], "flights", train[:120], split="train")
        import_rows(addresses["pool"], "flights", test[:40], split="test")
        client = ["--coordinator-address", addresses["coordinator"]]
        assert (
            cli(
                [
                    "run",
                    "--dataset",
                    "flights",
                    "--base-model",
                    str(tiny_bert_dir),
                    "--seed-size",
                    "24",
                    "--batch-size",
                    "12",
                    "--max-rounds",
                    "2",
                    "--epochs",
                    "1",
                    "--train-batch-size",
                    "8",
                    "--random-seed",
                    "3",
                    "--watch",
                    "--no-progress",
                    *client,
                ]
            )
            == 0
        )
        out = capsys.readouterr().out
        run_id = int(re.search(r"started run (\d+)", out).group(1))
        assert "state=completed" in out
        assert cli(["runs", *client]) == 0
        assert re.search(rf"^\s*{run_id}\s.*completed", capsys.readouterr().out, re.M)
        png, js = tmp_path / "curve.png", tmp_path / "curve.json"
        assert cli(["report", str(run_id), "--plot", str(png), "--json", str(js), *client]) == 0
        rounds = json.loads(js.read_text())["rounds"]
        assert [r["labels"] for r in rounds] == [24, 36]
        # The report shows each round's test accuracy as the coordinator recorded it.
        with CoordinatorClient(addresses["coordinator"], timeout=30) as coordinator:
            recorded = [r.test.accuracy for r in coordinator.get_run(run_id).rounds]
        assert [r["accuracy"] for r in rounds] == pytest.approx(recorded)
        assert png.stat().st_size > 1000
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "stopped" in rest
    with pytest.raises(OSError):
        urllib.request.urlopen(web + "healthz", timeout=2)
    # Every service is gone: nothing answers on their ports any more.
    for address in addresses.values():
        with pytest.raises(errors.Unavailable):
            wait_until_serving(address, timeout=1)


@pytest.mark.slow
def test_demo_on_synthetic_data_prints_a_learning_curve_and_writes_the_png(
    tmp_path, tiny_bert_dir, capsys, monkeypatch
):
    for key, value in CHILD_ENV.items():
        monkeypatch.setenv(key, value)
    png = tmp_path / "demo.png"
    code = cli(
        [
            "demo",
            "--synthetic",
            "--base-model",
            str(tiny_bert_dir),
            "--max-rounds",
            "2",
            "--epochs",
            "1",
            "--train-batch-size",
            "16",
            "--plot",
            str(png),
            "--state-dir",
            str(tmp_path / "state"),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    assert "demo data: the built-in synthetic flight-intent set" in out
    assert re.search(r"^web app: http://127\.0\.0\.1:\d+/ ", out, re.M)
    table = out[out.index("round  labels") :].splitlines()
    # Two rounds: 5% of the 510 synthetic training texts, then 5% more.
    assert [line.split()[:2] for line in table[2:4]] == [["0", "26"], ["1", "52"]]
    assert f"learning curve: {png}" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_local_stack_starts_the_web_app_and_stops_it(tmp_path, monkeypatch):
    for key, value in CHILD_ENV.items():
        monkeypatch.setenv(key, value)
    from lesslabels.cli.common import SERVICES as SERVICE_NAMES
    from tests.helpers import free_port

    metrics = free_port()
    with LocalStack(tmp_path / "state", web_port=0, metrics_port=metrics) as stack:
        with urllib.request.urlopen(stack.web_url + "runs", timeout=10) as reply:
            page = reply.read().decode()
            assert reply.status == 200 and "<h1>Runs</h1>" in page
            assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
        web = stack.processes["web"]
        # `up --metrics-port N`: every process serves its metrics, N, N+1, ... in a fixed order.
        assert stack.metrics_ports == {
            name: metrics + i for i, name in enumerate(("pool", "trainer", "scorer", "coordinator", "web"))
        }
        for name, family in [(name, "lesslabels_grpc_server_handled_total") for name in SERVICE_NAMES] + [
            ("web", "lesslabels_web_labels_total")
        ]:
            url = f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics"
            with urllib.request.urlopen(url, timeout=10) as reply:
                assert f"# TYPE {family} counter" in reply.read().decode(), name
    assert web.poll() is not None
    with pytest.raises(OSError):
        urllib.request.urlopen(stack.web_url + "healthz", timeout=2)
