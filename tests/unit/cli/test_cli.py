"""The user-facing CLI without the real services: flag parsing, label files, errors, and every command
against a small scripted coordinator served over real gRPC (port 0)."""

from __future__ import annotations

import json
import threading

import pytest

from lesslabels.cli import main as cli_main
from lesslabels.cli.common import CliError
from lesslabels.cli.runconfig import parse_amount, run_config_from_args, add_run_flags
from lesslabels.cli.common import ArgumentParser
from lesslabels.cli.runs import check_labels, import_key, read_label_file
from lesslabels.common import errors
from lesslabels.common.server import Server, ServiceRegistration
from lesslabels.v1 import (
    common_pb2,
    coordinator_pb2,
    coordinator_pb2_grpc,
    pool_pb2,
    run_pb2,
)
from tests.helpers import server_settings_for_tests


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    "text,kind,value",
    [
        ("100", "count", 100),
        ("0.05", "fraction", 0.05),
        ("5%", "fraction", 0.05),
        ("1", "count", 1),
        ("1.0", "fraction", 1.0),
        ("100%", "fraction", 1.0),
    ],
)
def test_parse_amount(text, kind, value):
    amount = parse_amount(text, "--seed-size")
    assert getattr(amount, kind) == pytest.approx(value)
    assert not getattr(amount, "fraction" if kind == "count" else "count")  # exactly one is set


@pytest.mark.parametrize(
    "text,message",
    [
        ("1.5", "fraction must be in (0, 1]"),
        ("0", "must be positive"),
        ("-3", "fraction must be in"),
        ("abc", "not a number"),
        ("150%", "fraction must be in"),
        ("nan", "fraction must be in"),
        ("0.0", "fraction"),
    ],
)
def test_parse_amount_rejects(text, message):
    with pytest.raises(
        CliError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]").replace("[", r"\[")
    ) as info:
        parse_amount(text, "--seed-size")
    assert info.value.exit_code == 2
    assert "--seed-size" in str(info.value)


def _parse_run(argv):
    parser = ArgumentParser(prog="t")
    add_run_flags(parser)
    return run_config_from_args(parser.parse_args(argv))


def test_run_config_from_flags():
    config = _parse_run(
        [
            "--dataset",
            "atis",
            "--strategy",
            "margin",
            "--seed-size",
            "2%",
            "--batch-size",
            "100",
            "--max-rounds",
            "4",
            "--label-budget",
            "0.1",
            "--target-accuracy",
            "0.95",
            "--stable-agreement",
            "0.99",
            "--oracle",
            "human",
            "--random-seed",
            "7",
            "--epochs",
            "3",
            "--learning-rate",
            "1e-4",
            "--base-model",
            "/models/tiny",
            "--seed-strategy",
            "diverse",
            "--warm-start",
            "--class-balance",
            "weighted-loss",
            "--name",
            "try",
            "--candidates",
            "5000",
        ]
    )
    assert config.dataset == "atis" and config.name == "try" and config.base_model == "/models/tiny"
    assert config.candidates == 5000 and _parse_run(["--dataset", "atis"]).candidates == 0
    assert config.strategy == "margin"
    assert config.seed_size.fraction == pytest.approx(0.02)
    assert config.batch_size.count == 100
    assert config.stopping.max_rounds == 4
    assert config.stopping.label_budget.fraction == pytest.approx(0.1)
    assert config.stopping.target_accuracy == pytest.approx(0.95)
    assert config.stopping.stable_agreement == pytest.approx(0.99)
    assert config.oracle == "human"
    assert config.random_seed == 7
    assert config.seed_strategy == "diverse"
    assert config.warm_start
    assert config.hyperparameters.max_epochs == 3
    assert config.hyperparameters.learning_rate == pytest.approx(1e-4)
    assert config.hyperparameters.class_balance == "weighted_loss"


def test_run_defaults_are_the_recommended_protocol_and_the_original_is_one_flag_away():
    config = _parse_run(["--dataset", "atis"])
    assert (config.strategy, config.seed_strategy) == ("clustered_entropy", "diverse")
    assert config.seed_size.fraction == pytest.approx(0.02) and config.batch_size.fraction == pytest.approx(0.02)
    assert config.stopping.label_budget is None
    assert config.oracle == "simulated"
    assert "max_epochs" not in config.hyperparameters.changed()
    assert "class_balance" not in config.hyperparameters.changed()
    original = _parse_run(["--dataset", "atis", "--protocol", "original"])
    assert (original.strategy, original.seed_strategy) == ("entropy", "random")
    assert original.seed_size.fraction == pytest.approx(0.05) and original.batch_size.fraction == pytest.approx(0.1)
    # A flag given wins over the protocol's default.
    assert _parse_run(["--dataset", "atis", "--protocol", "original", "--strategy", "margin"]).strategy == "margin"
    # The one training default the CLI sets itself: enough steps for a 100-label round.
    assert config.hyperparameters.min_steps == 250
    assert _parse_run(["--dataset", "atis", "--min-steps", "0"]).hyperparameters.min_steps == 0


def test_epochs_alone_turn_the_step_floor_off_and_the_plan_says_so():
    from lesslabels.cli.runconfig import training_plan

    default = _parse_run(["--dataset", "atis"])
    assert "10 epochs, more when that is under 250 optimizer steps" in training_plan(default)
    epochs = _parse_run(["--dataset", "atis", "--epochs", "3"])
    assert epochs.hyperparameters.max_epochs == 3 and epochs.hyperparameters.min_steps == 0
    assert training_plan(epochs).startswith("training per round: 3 epochs (no --min-steps floor)")
    both = _parse_run(["--dataset", "atis", "--epochs", "3", "--min-steps", "40"])
    assert (both.hyperparameters.max_epochs, both.hyperparameters.min_steps) == (3, 40)
    # --max-steps lowers the default floor to itself; a floor given above the cap is refused.
    assert _parse_run(["--dataset", "atis", "--max-steps", "10"]).hyperparameters.min_steps == 10
    with pytest.raises(CliError, match="--min-steps: hyperparameters.min_steps 40 must not exceed max_steps 10"):
        _parse_run(["--dataset", "atis", "--max-steps", "10", "--min-steps", "40"])
    assert "3 epochs, more when that is under 40 optimizer steps" in training_plan(both)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--target-accuracy", "1.5"], "--target-accuracy 1.5: must be in (0, 1]"),
        (["--stable-agreement", "-0.1"], "--stable-agreement -0.1: must be in (0, 1]"),
        (["--max-rounds", "-1"], "--max-rounds -1: must be 1 or more"),
        (["--max-rounds", "200000"], "--max-rounds: stopping.max_rounds must be in [0, 100000], got 200000"),
        (["--epochs", "-2"], "--epochs: hyperparameters.max_epochs must be in [1, 1000], got -2"),
        (["--min-steps", "-3"], "--min-steps: hyperparameters.min_steps must be in [0, 10000000], got -3"),
        (["--candidates", "-5"], "--candidates: candidates must not be negative, got -5"),
        (["--learning-rate", "-1"], "--learning-rate: hyperparameters.learning_rate must be in (0, 1], got -1.0"),
        (["--learning-rate", "nan"], "--learning-rate: hyperparameters.learning_rate must be finite, got nan"),
        (["--max-length", "100000"], "--max-length: hyperparameters.max_length must be in [8, 8192], got 100000"),
        (["--batch-size", "2.5"], "--batch-size 2.5: a fraction must be in (0, 1]"),
    ],
)
def test_run_config_rejects_bad_values(argv, message):
    with pytest.raises(CliError) as info:
        _parse_run(["--dataset", "d", *argv])
    assert message in str(info.value) and info.value.exit_code == 2


def test_bad_flags_exit_2_with_a_message_and_no_traceback(capsys):
    assert cli_main.main(["run", "--dataset", "d", "--seed-size", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "lesslabels run: error: --seed-size 1.5: a fraction must be in (0, 1]" in err
    assert "Traceback" not in err
    assert cli_main.main(["run", "--dataset", "d", "--strategy", "psychic"]) == 2
    assert "invalid choice: 'psychic'" in capsys.readouterr().err
    assert cli_main.main(["run"]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert cli_main.main(["status", "abc"]) == 2
    assert "run id 'abc' is not a number" in capsys.readouterr().err
    assert cli_main.main(["report", "1", "--reference", "2"]) == 2
    assert "--reference 2.0: must be in (0, 1]" in capsys.readouterr().err


def test_unreachable_coordinator_is_one_clear_line(capsys):
    assert cli_main.main(["runs", "--coordinator-address", "127.0.0.1:1", "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the coordinator service at 127.0.0.1:1" in err
    assert "LESSLABELS_COORDINATOR_ADDRESS" in err and "Traceback" not in err


def test_coordinator_address_comes_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("LESSLABELS_COORDINATOR_ADDRESS", "127.0.0.1:2")
    assert cli_main.main(["status", "3", "--timeout", "5"]) == 1
    assert "127.0.0.1:2" in capsys.readouterr().err


def test_read_label_file_csv_skips_blank_labels(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("sample_id,label,text,score\n3,greet,hi,0.5\n4,,bye,0.4\n5, bye ,ciao,0.3\n3,greet,hi,0.5\n")
    assert read_label_file(path, "csv") == [(3, "greet"), (5, "bye")]


def test_read_label_file_jsonl(tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text(
        '{"sample_id": 9, "label": "bye"}\n\n{"sample_id": "2", "label": "greet", "text": "x"}\n'
        '{"sample_id": 4, "label": ""}\n'
    )
    assert read_label_file(path, "jsonl") == [(2, "greet"), (9, "bye")]


@pytest.mark.parametrize(
    "name,body,fmt,message",
    [
        ("missing.csv", None, "csv", "no such file"),
        ("nohdr.csv", "3,greet\n", "csv", "must name 'sample_id' and 'label'"),
        ("badid.csv", "sample_id,label\nx,greet\n", "csv", "badid.csv:2: sample_id 'x' is not a number"),
        ("twice.csv", "sample_id,label\n1,a\n1,b\n", "csv", "sample 1 has two different labels"),
        ("bad.jsonl", '{"sample_id": 1, "label": "a"}\nnot json\n', "jsonl", "bad.jsonl:2: not JSON"),
        ("list.jsonl", "[1, 2]\n", "jsonl", "expected a JSON object"),
    ],
)
def test_read_label_file_errors(tmp_path, name, body, fmt, message):
    path = tmp_path / name
    if body is not None:
        path.write_text(body)
    with pytest.raises(CliError, match=message):
        read_label_file(path, fmt)


def _pending(ids=(1, 2, 3), labels=("greet", "bye")):
    return coordinator_pb2.PendingLabels(
        run_id=5,
        round=1,
        labels=list(labels),
        samples=[coordinator_pb2.PendingSample(sample_id=i, text=f"text {i}", score=0.5) for i in ids],
        remaining=len(ids),
    )


def test_check_labels_names_unknown_labels(tmp_path):
    check_labels([(1, "greet"), (3, "bye")], _pending(), tmp_path / "f.csv")
    # Samples outside the pending batch are the coordinator's to judge (repeats of recorded labels pass).
    check_labels([(1, "greet"), (7, "bye")], _pending(), tmp_path / "f.csv")
    with pytest.raises(CliError, match=r"unknown label\(s\) 'hello'; allowed: bye, greet"):
        check_labels([(1, "hello")], _pending(), tmp_path / "f.csv")


def test_import_key_depends_on_content_only():
    assert import_key(5, [(1, "a"), (2, "b")]) == import_key(5, [(1, "a"), (2, "b")])
    assert import_key(5, [(1, "a")]) != import_key(5, [(1, "b")])
    assert import_key(5, [(1, "a")]) != import_key(6, [(1, "a")])


# --------------------------------------------------------------------------- a scripted coordinator


class FakeCoordinator(coordinator_pb2_grpc.CoordinatorServiceServicer):
    """Just enough of the coordinator's contract to drive the CLI: one human-mode run, one finished run."""

    def __init__(self):
        self.lock = threading.Lock()
        self.submissions = []
        self.keys = set()
        self.labels: dict[int, str] = {}
        self.started = []
        config = run_pb2.RunConfig(
            dataset="d",
            strategy=run_pb2.STRATEGY_ENTROPY,
            seed_size=run_pb2.Amount(fraction=0.1),
            batch_size=run_pb2.Amount(count=2),
        )
        self.runs = {
            1: run_pb2.Run(
                id=1,
                config=config,
                state=run_pb2.RUN_STATE_COMPLETED,
                step=run_pb2.RUN_STEP_DONE,
                round=1,
                labelled_count=20,
                pool_size=100,
                stop_reason="max rounds 2 reached",
            ),
            2: run_pb2.Run(
                id=2,
                config=config,
                state=run_pb2.RUN_STATE_WAITING_FOR_LABELS,
                step=run_pb2.RUN_STEP_LABEL,
                round=1,
                labelled_count=10,
                pool_size=100,
            ),
        }
        self.rounds = {
            1: [
                run_pb2.Round(
                    run_id=1,
                    index=0,
                    labelled_count=10,
                    selected_count=10,
                    test=common_pb2.EvalMetrics(accuracy=0.5, macro_f1=0.4, count=50),
                ),
                run_pb2.Round(
                    run_id=1,
                    index=1,
                    labelled_count=20,
                    agreement=0.9,
                    test=common_pb2.EvalMetrics(accuracy=0.75, macro_f1=0.7, count=50),
                ),
            ],
            2: [
                run_pb2.Round(
                    run_id=2,
                    index=0,
                    labelled_count=10,
                    selected_count=3,
                    test=common_pb2.EvalMetrics(accuracy=0.6, macro_f1=0.5, count=50),
                )
            ],
        }

    def _run(self, run_id):
        if run_id not in self.runs:
            raise errors.NotFound(f"run {run_id} not found")
        return self.runs[run_id]

    def GetRun(self, request, context):
        run = self._run(request.run_id)
        return coordinator_pb2.RunDetail(run=run, rounds=self.rounds.get(run.id, []))

    def ListRuns(self, request, context):
        return run_pb2.ListRunsResponse(runs=list(self.runs.values()))

    def StartRun(self, request, context):
        with self.lock:
            self.started.append(request)
            run_id = max(self.runs) + 1
            self.runs[run_id] = run_pb2.Run(
                id=run_id,
                config=request.config,
                state=run_pb2.RUN_STATE_COMPLETED,
                step=run_pb2.RUN_STEP_DONE,
                pool_size=100,
                labelled_count=20,
            )
            self.rounds[run_id] = [
                run_pb2.Round(
                    run_id=run_id,
                    index=i,
                    labelled_count=10 * (i + 1),
                    test=common_pb2.EvalMetrics(
                        accuracy=0.5 + 0.1 * i + 0.01 * request.config.random_seed, macro_f1=0.5, count=50
                    ),
                )
                for i in range(2)
            ]
            return self.runs[run_id]

    def CancelRun(self, request, context):
        # As the coordinator: a completed (or already cancelled) run is returned as it is.
        run = self._run(request.run_id)
        if run.state not in (run_pb2.RUN_STATE_COMPLETED, run_pb2.RUN_STATE_CANCELLED):
            run.state = run_pb2.RUN_STATE_CANCELLED
        return run

    def ResumeRun(self, request, context):
        run = self._run(request.run_id)
        if run.state != run_pb2.RUN_STATE_FAILED:
            raise errors.FailedPrecondition(f"run {run.id} is not failed")
        return run

    watch = None  # a test may script the stream (the handler is bound when the server starts)

    def WatchRun(self, request, context):
        if self.watch is not None:
            yield from self.watch(request, context)
            return
        run = self._run(request.run_id)
        yield coordinator_pb2.RunEvent(run=run, message="done")

    def GetPendingLabels(self, request, context):
        self._run(request.run_id)
        pending = _pending(ids=self.pending_ids)
        pending.run_id = request.run_id
        for s in pending.samples:
            s.label = self.labels.get(s.sample_id, "")
        pending.remaining = sum(1 for s in pending.samples if not s.label)
        return pending

    pending_ids = (11, 12, 13)

    def SubmitRunLabels(self, request, context):
        # As the coordinator: outside the pending batch only repeats of recorded labels are taken.
        outside = [a.sample_id for a in request.labels if a.sample_id not in self.pending_ids]
        outside = [i for i in outside if self.labels.get(i) != dict((a.sample_id, a.label) for a in request.labels)[i]]
        if outside:
            raise errors.InvalidArgument(f"samples {outside} are not in the pending batch of run {request.run_id}")
        with self.lock:
            self.submissions.append(request)
            recorded = unchanged = 0
            if request.idempotency_key not in self.keys:
                self.keys.add(request.idempotency_key)
                for a in request.labels:
                    if self.labels.get(a.sample_id) == a.label:
                        unchanged += 1
                    else:
                        self.labels[a.sample_id] = a.label
                        recorded += 1
            else:
                unchanged = len(request.labels)
            remaining = 3 - len(self.labels)
        return coordinator_pb2.SubmitRunLabelsResponse(
            result=pool_pb2.SubmitLabelsResponse(recorded=recorded, unchanged=unchanged), remaining=remaining
        )


@pytest.fixture
def fake_coordinator():
    servicer = FakeCoordinator()
    name = coordinator_pb2.DESCRIPTOR.services_by_name["CoordinatorService"].full_name
    server = Server(
        server_settings_for_tests(),
        [
            ServiceRegistration(
                names=(name,),
                register=lambda s: coordinator_pb2_grpc.add_CoordinatorServiceServicer_to_server(servicer, s),
            )
        ],
        name="fake-coordinator",
    )
    port = server.start()
    server.set_serving()
    servicer.address = f"127.0.0.1:{port}"
    yield servicer
    server.stop(0)


def _cli(fake, *argv):
    return cli_main.main([*argv, "--coordinator-address", fake.address, "--timeout", "10"])


def test_runs_lists_every_run(fake_coordinator, capsys):
    assert _cli(fake_coordinator, "runs") == 0
    out = capsys.readouterr().out
    assert "completed" in out and "waiting for labels" in out and "20/100" in out


def test_status_prints_the_rounds_table(fake_coordinator, capsys):
    assert _cli(fake_coordinator, "status", "1") == 0
    out = capsys.readouterr().out
    assert "run 1" in out and "state=completed" in out and "stopped: max rounds 2 reached" in out
    lines = [line.split() for line in out.splitlines()]
    assert ["1", "20", "20.0%", "75.00", "70.00", "90.0"] in [line[:6] for line in lines]


def test_status_of_a_waiting_run_says_how_to_label(fake_coordinator, capsys):
    assert _cli(fake_coordinator, "status", "2") == 0
    assert "lesslabels label export 2" in capsys.readouterr().out


def test_unknown_run_is_a_clear_error(fake_coordinator, capsys):
    for command in (["status", "99"], ["report", "99"], ["cancel", "99"], ["label", "export", "99", "x.csv"]):
        assert _cli(fake_coordinator, *command) == 1
        err = capsys.readouterr().err
        assert "run 99 not found (NOT_FOUND)" in err and "Traceback" not in err


def test_resume_of_a_completed_run_reports_the_precondition(fake_coordinator, capsys):
    assert _cli(fake_coordinator, "resume", "1") == 1
    assert "run 1 is not failed (FAILED_PRECONDITION)" in capsys.readouterr().err


def test_cancel(fake_coordinator, capsys):
    assert _cli(fake_coordinator, "cancel", "2") == 0
    out = capsys.readouterr().out
    assert "state=cancelled" in out and "already" not in out
    # Again: the run stays cancelled, and the command says nothing changed.
    assert _cli(fake_coordinator, "cancel", "2") == 0
    assert "run 2 was already cancelled; nothing changed" in capsys.readouterr().out


def test_cancel_of_a_completed_run_says_so_and_fails(fake_coordinator, capsys):
    assert _cli(fake_coordinator, "cancel", "1") == 1
    captured = capsys.readouterr()
    assert "run 1 already completed (max rounds 2 reached): nothing to cancel" in captured.err
    assert "state=cancelled" not in captured.out
    assert fake_coordinator.runs[1].state == run_pb2.RUN_STATE_COMPLETED


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--batch-size", "20", "--max-rounds", "0"], "--max-rounds 0: must be 1 or more"),
        (["--max-rounds", "-2"], "--max-rounds -2: must be 1 or more"),
        (["--target-accuracy", "0"], "--target-accuracy 0: must be in (0, 1]"),
        (["--target-accuracy", "95"], "--target-accuracy 95: must be in (0, 1]"),
        (["--stable-agreement", "0"], "--stable-agreement 0: must be in (0, 1]"),
        (["--oracle", "human", "--overlap", "1.5"], "--overlap: overlap must be in [0, 1], got 1.5"),
        (["--oracle", "human", "--overlap", "nan"], "--overlap: overlap must be in [0, 1], got nan"),
        (
            ["--oracle", "human", "--no-async", "--overlap", "0.2"],
            "overlap applies to asynchronous runs with the human",
        ),
        (["--overlap", "0.2"], "--overlap: overlap applies to asynchronous runs with the human oracle only"),
    ],
)
def test_run_flags_that_stop_nothing_are_refused_before_a_run_starts(fake_coordinator, capsys, flags, message):
    assert _cli(fake_coordinator, "run", "--dataset", "d", *flags) == 2
    assert message in capsys.readouterr().err
    assert fake_coordinator.started == []


def test_run_sends_the_overlap(fake_coordinator, capsys):
    assert _cli(fake_coordinator, "run", "--dataset", "d", "--oracle", "human", "--overlap", "0.25") == 0
    assert fake_coordinator.started[-1].config.overlap == 0.25


def test_run_sends_the_config_and_watch_follows_to_the_end(fake_coordinator, capsys):
    assert (
        _cli(
            fake_coordinator,
            "run",
            "--dataset",
            "d",
            "--strategy",
            "random",
            "--seed-size",
            "10",
            "--max-rounds",
            "2",
            "--watch",
            "--no-progress",
        )
        == 0
    )
    out = capsys.readouterr().out
    sent = fake_coordinator.started[-1]
    assert sent.config.strategy == run_pb2.STRATEGY_RANDOM and sent.config.seed_size.count == 10
    assert sent.request_id
    assert "started run 3" in out and "state=completed" in out
    assert "training per round: 10 epochs, more when that is under 250 optimizer steps" in out  # the plan
    assert "60.00" in out  # round 1's accuracy row, printed by the live view


def test_label_export_then_partial_and_repeated_imports(fake_coordinator, tmp_path, capsys):
    exported = tmp_path / "batch.csv"
    assert _cli(fake_coordinator, "label", "export", "2", str(exported)) == 0
    assert "wrote 3 samples" in capsys.readouterr().out
    lines = exported.read_text().splitlines()
    header = "sample_id,label,text,predicted_label,probability,uncertainty,model,annotator,labelled_at,label_source"
    assert lines[0] == header and len(lines) == 4
    # The fake run has no model yet: no suggestions, said so, and the acquisition score is kept.
    assert lines[1].endswith(",,,0.5,,,,")
    # Label one row only: a partial import.
    rows = [line.split(",") for line in lines]
    rows[1][1] = "greet"
    exported.write_text("\n".join(",".join(r) for r in rows) + "\n")
    assert _cli(fake_coordinator, "label", "import", "2", str(exported)) == 0
    out = capsys.readouterr().out
    assert "1 labels recorded" in out and "2 of the batch still unlabelled" in out
    # The same file again: the same idempotency key, nothing new.
    assert _cli(fake_coordinator, "label", "import", "2", str(exported)) == 0
    assert "0 labels recorded, 1 unchanged (already labelled)" in capsys.readouterr().out
    assert len({s.idempotency_key for s in fake_coordinator.submissions}) == 1
    # Late: the run moved on to its next batch; the file's label is a repeat and still succeeds.
    fake_coordinator.pending_ids = (14, 15, 16)
    assert _cli(fake_coordinator, "label", "import", "2", str(exported)) == 0
    assert "1 unchanged (already labelled)" in capsys.readouterr().out
    fake_coordinator.pending_ids = (11, 12, 13)
    # JSONL export shows the label already given.
    jsonl = tmp_path / "batch.jsonl"
    assert _cli(fake_coordinator, "label", "export", "2", str(jsonl)) == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["label"] for r in records] == ["greet", "", ""]
    # No pool answers here: the export goes on without who gave the label, and says so.
    assert "no annotator, time or source for the labelled texts" in capsys.readouterr().err
    assert records[0]["annotator"] == "" and records[0]["label_source"] == ""


def test_a_label_contradicting_a_given_one_is_refused_unless_relabel(fake_coordinator, tmp_path, capsys):
    first = tmp_path / "a.csv"
    first.write_text("sample_id,label\n11,greet\n")
    assert _cli(fake_coordinator, "label", "import", "2", str(first)) == 0
    capsys.readouterr()
    other = tmp_path / "b.csv"
    other.write_text("sample_id,label\n11,bye\n12,greet\n")
    assert _cli(fake_coordinator, "label", "import", "2", str(other)) == 1
    err = capsys.readouterr().err
    assert "1 label(s) contradict labels already given (sample 11: 'greet' given, 'bye' in the file)" in err
    assert "nothing was recorded" in err and "--relabel" in err
    assert fake_coordinator.labels == {11: "greet"} and len(fake_coordinator.submissions) == 1
    assert _cli(fake_coordinator, "label", "import", "2", str(other), "--relabel") == 0
    assert fake_coordinator.labels == {11: "bye", 12: "greet"}


def test_label_import_rejects_unknown_ids_labels_and_missing_files(fake_coordinator, tmp_path, capsys):
    bad_id = tmp_path / "bad_id.csv"
    bad_id.write_text("sample_id,label\n11,greet\n999,bye\n")
    assert _cli(fake_coordinator, "label", "import", "2", str(bad_id)) == 1
    assert "samples [999] are not in the pending batch of run 2" in capsys.readouterr().err
    bad_label = tmp_path / "bad_label.csv"
    bad_label.write_text("sample_id,label\n11,hello\n")
    assert _cli(fake_coordinator, "label", "import", "2", str(bad_label)) == 1
    assert "unknown label(s) 'hello'" in capsys.readouterr().err
    assert _cli(fake_coordinator, "label", "import", "2", str(tmp_path / "nope.csv")) == 1
    assert "nope.csv: no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("sample_id,label\n11,\n")
    assert _cli(fake_coordinator, "label", "import", "2", str(empty)) == 1
    assert "no row has a label" in capsys.readouterr().err
    assert fake_coordinator.submissions == [] and fake_coordinator.labels == {}


def test_report_writes_table_csv_json_and_png(fake_coordinator, tmp_path, capsys):
    png, csv_path, json_path = tmp_path / "r.png", tmp_path / "r.csv", tmp_path / "r.json"
    assert (
        _cli(fake_coordinator, "report", "1", "--plot", str(png), "--csv", str(csv_path), "--json", str(json_path)) == 0
    )
    out = capsys.readouterr().out
    assert "75.00" in out and str(png) in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert csv_path.read_text().splitlines()[0].startswith("round,labels,pool_fraction,accuracy,macro_f1")
    assert [r["labels"] for r in json.loads(json_path.read_text())["rounds"]] == [10, 20]
    assert _cli(fake_coordinator, "report", "1", "--format", "json", "--no-plot") == 0
    assert json.loads(capsys.readouterr().out)["rounds"][1]["accuracy"] == pytest.approx(0.75)


def test_report_writes_a_png_only_when_asked(fake_coordinator, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _cli(fake_coordinator, "report", "1") == 0
    assert "learning curve" not in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    assert _cli(fake_coordinator, "report", "1", "--plot") == 0  # no FILE: the default name
    assert (tmp_path / "lesslabels-run-1.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_starts_strategies_times_seeds_and_summarises(fake_coordinator, tmp_path, capsys):
    png, js = tmp_path / "c.png", tmp_path / "c.json"
    assert (
        _cli(
            fake_coordinator,
            "compare",
            "--dataset",
            "d",
            "--strategies",
            "entropy,random",
            "--seeds",
            "0,2",
            "--max-rounds",
            "2",
            "--plot",
            str(png),
            "--json",
            str(js),
            "--no-progress",
            "--reference",
            "0.605",
            "--tolerance",
            "0.01",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert len(fake_coordinator.started) == 4
    assert {(r.config.strategy, r.config.random_seed) for r in fake_coordinator.started} == {
        (run_pb2.STRATEGY_ENTROPY, 0),
        (run_pb2.STRATEGY_ENTROPY, 2),
        (run_pb2.STRATEGY_RANDOM, 0),
        (run_pb2.STRATEGY_RANDOM, 2),
    }
    # Seeds 0 and 2 give accuracies (0.50, 0.60) and (0.52, 0.62) at 10 and 20 labels: AUC 0.55 and 0.57,
    # mean 0.56; both reach the target 0.595 at 20 labels.
    summary = json.loads(js.read_text())
    entropy = next(s for s in summary["strategies"] if s["strategy"] == "entropy")
    assert entropy["auc_mean"] == pytest.approx(0.56)
    assert entropy["labels_to_target_mean"] == pytest.approx(20.0)
    assert "56.00 ±" in out and png.read_bytes()[:4] == b"\x89PNG"


def test_compare_needs_runs_or_a_dataset(fake_coordinator, capsys):
    assert _cli(fake_coordinator, "compare") == 2
    assert "give --runs" in capsys.readouterr().err
    assert _cli(fake_coordinator, "compare", "--dataset", "d", "--strategies", "entropy,psychic") == 2
    assert "unknown psychic" in capsys.readouterr().err


def test_live_view_prints_each_round_once_when_it_is_over():
    import io

    from lesslabels.cli.live import RunView
    from lesslabels.client import Metrics, Round, Run, RunConfig

    out, err = io.StringIO(), io.StringIO()
    view = RunView(100, progress=False, out=out, err=err)
    running = Run(1, RunConfig("d"), state="RUNNING", step="SCORE", round=0)
    r0 = Round(1, 0, labelled_count=10, test=Metrics(accuracy=0.5, macro_f1=0.4, count=9))
    view.add_rounds([r0], running)
    view.update(running, 0.5, "scoring: 50/100")
    assert out.getvalue() == ""  # round 0 is still selecting: its row is not final yet
    assert "round 0 score: scoring: 50/100" in err.getvalue()
    r0_done = Round(1, 0, labelled_count=10, selected_count=5, test=Metrics(accuracy=0.5, macro_f1=0.4, count=9))
    next_round = Run(1, RunConfig("d"), state="RUNNING", step="TRAIN", round=1)
    view.add_rounds([r0_done], next_round)
    view.add_rounds([r0_done], next_round)
    r1 = Round(1, 1, labelled_count=15, test=Metrics(accuracy=0.7, macro_f1=0.6, count=9))
    view.add_rounds([r1], Run(1, RunConfig("d"), state="COMPLETED", step="DONE", round=1))
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:2] == ["round", "labels"]
    body = [line.split() for line in lines[2:]]
    assert [row[:2] for row in body] == [["0", "10"], ["1", "15"]]
    assert body[0][6] == "5"  # the selection count of the finished round 0


def test_live_view_draws_a_bar_per_step_when_progress_is_on():
    import io

    from lesslabels.cli.live import RunView
    from lesslabels.client import Run, RunConfig

    out, err = io.StringIO(), io.StringIO()
    view = RunView(100, progress=True, out=out, err=err)
    training = Run(1, RunConfig("d"), state="RUNNING", step="TRAIN", round=0)
    view.update(training, 0.25, "epoch 1/4")
    view.update(training, 0.75, "epoch 3/4")
    assert view._bar is not None and view._bar.n == 75
    scoring = Run(1, RunConfig("d"), state="RUNNING", step="SCORE", round=0)
    view.update(scoring, 0.1, "scoring 10/100")
    assert view._bar.n == 10  # a new bar for the new step
    view.close_bar()
    drawn = err.getvalue()
    assert "round 0 train" in drawn and "epoch 3/4" in drawn and "round 0 score" in drawn


def test_live_bars_show_an_eta_and_a_rate_once_they_can_know_them(monkeypatch):
    import io

    from lesslabels.cli import live
    from lesslabels.client import Run, RunConfig

    clock = [100.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    err = io.StringIO()
    view = live.RunView(100, progress=True, out=io.StringIO(), err=err)
    scoring = Run(1, RunConfig("d"), state="RUNNING", step="SCORE", round=0)
    view.update(scoring, 0.0, "scoring 0/1000")
    assert "<?" in err.getvalue() and "/s)" not in err.getvalue()  # nothing done yet: no ETA, no rate
    clock[0] += 2.0
    view.update(scoring, 0.4, "scoring 400/1000")
    assert "scoring 400/1000 (200/s)" in err.getvalue() and "<00:0" in err.getvalue()  # rate and ETA
    assert view._rate("embedding the pool") == ""  # no counts: no rate
    view.close_bar()


def test_live_view_without_a_terminal_prints_measured_progress_every_ten_seconds(monkeypatch):
    import io

    from lesslabels.cli import live
    from lesslabels.client import Run, RunConfig, StepProgress

    clock = [100.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    err = io.StringIO()
    view = live.RunView(100, progress=False, out=io.StringIO(), err=err)
    training = Run(1, RunConfig("d"), state="RUNNING", step="TRAIN", round=2)

    def step(done: int) -> None:
        progress = StepProgress("steps", done, 400, samples_per_second=35.2, elapsed_seconds=done / 4, eta_seconds=20)
        view.update(training, progress.fraction, f"training, {progress.describe()}", progress)

    step(40)
    clock[0] += 4.0
    step(56)  # 4 s later: not yet
    clock[0] += 6.5
    step(82)
    lines = err.getvalue().splitlines()
    assert lines == [
        "round 2 train: training, steps 40/400, 35.2 samples/s, 0:10 elapsed, about 0:20 left",
        "round 2 train: training, steps 82/400, 35.2 samples/s, 0:20 elapsed, about 0:20 left",
    ]


def test_measured_progress_speed_and_eta():
    from lesslabels.client import StepProgress

    progress = StepProgress.measured("texts", 300, 1200, 10.0)
    assert (progress.per_second, progress.eta_seconds, progress.fraction) == (30.0, 30.0, 0.25)
    assert progress.describe() == "texts 300/1200, 30.0 texts/s, 0:10 elapsed, about 0:30 left"
    unknown = StepProgress.measured("texts", 0, 1200, 0.0)
    assert (unknown.per_second, unknown.eta_seconds) == (0.0, 0.0) and "left" not in unknown.describe()
    assert StepProgress.measured("steps", 5, 0, 1.0).fraction == 0.0


def test_compare_bar_shows_no_eta(fake_coordinator, capsys):
    from lesslabels.cli.client import Client
    from lesslabels.cli.results import wait_for_runs

    with Client(fake_coordinator.address, timeout=10) as client:
        wait_for_runs(client, [1], progress=True)
    drawn = capsys.readouterr().err
    assert "runs finished: 1/1" in drawn and "<" not in drawn and "?" not in drawn


def test_compare_existing_runs(fake_coordinator, tmp_path, capsys):
    png = tmp_path / "c.png"
    assert _cli(fake_coordinator, "compare", "--runs", "1", "--plot", str(png), "--no-progress") == 0
    out = capsys.readouterr().out
    # Run 1: accuracies 0.5 and 0.75 at 10 and 20 labels: AUC 0.625.
    assert "62.50 ± 0.00" in out and png.stat().st_size > 1000
    assert _cli(fake_coordinator, "compare", "--runs", "1,x") == 2
    assert "run id 'x' is not a number" in capsys.readouterr().err


def test_compare_runs_with_no_shared_label_range_says_why(fake_coordinator, tmp_path, capsys):
    late = run_pb2.Run()
    late.CopyFrom(fake_coordinator.runs[1])
    late.id = 9
    fake_coordinator.runs[9] = late
    fake_coordinator.rounds[9] = [
        run_pb2.Round(
            run_id=9, index=i, labelled_count=100 * (i + 1), test=common_pb2.EvalMetrics(accuracy=0.8, count=50)
        )
        for i in range(2)
    ]
    png = tmp_path / "c.png"
    assert _cli(fake_coordinator, "compare", "--runs", "1,9", "--plot", str(png), "--no-progress") == 1
    err = capsys.readouterr().err
    assert "cannot be compared: their learning curves share no label range" in err
    assert "run 1 10..20, run 9 100..200" in err and "Traceback" not in err
    assert not png.exists()


def test_follow_reopens_a_stream_that_reaches_its_deadline(fake_coordinator):
    import time as time_

    from lesslabels.cli.client import Client
    from lesslabels.cli.live import follow_run

    run = fake_coordinator.runs[1]
    run.state = run_pb2.RUN_STATE_RUNNING
    calls = []

    def slow_watch(request, context):
        calls.append(request.run_id)
        time_.sleep(1.0)  # longer than the watch window: the client's deadline ends the stream
        run.state = run_pb2.RUN_STATE_COMPLETED
        yield coordinator_pb2.RunEvent(run=run)

    fake_coordinator.watch = slow_watch
    with Client(fake_coordinator.address, timeout=5) as client:
        final = follow_run(client, 1, progress=False, watch_window=0.3)
    # The first stream hit its deadline before any event: the view opened another instead of failing.
    assert final.state == "COMPLETED" and len(calls) >= 2


def test_follow_gives_up_on_a_lost_coordinator_with_a_clear_error():
    from lesslabels.cli.client import Client
    from lesslabels.cli.common import ServiceCallError
    from lesslabels.cli.live import follow_run

    with Client("127.0.0.1:1", timeout=2) as client:
        with pytest.raises(ServiceCallError, match="cannot reach the coordinator service at 127.0.0.1:1"):
            follow_run(client, 1, progress=False, reconnect_seconds=0)


def test_up_rejects_a_bad_port(capsys):
    assert cli_main.main(["up", "--pool-port", "70000"]) == 2
    assert "--pool-port 70000: must be within 0..65535" in capsys.readouterr().err


def test_the_cli_process_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, lesslabels.cli.runs, lesslabels.cli.results, lesslabels.cli.stack, lesslabels.cli.demo, "
        "lesslabels.cli.live, lesslabels.cli.report; "
        "from lesslabels.cli.plots import _pyplot; _pyplot(); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
