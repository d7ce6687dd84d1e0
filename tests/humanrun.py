"""Helpers for tests that drive a human-mode run on the toy dataset (CLI, web app, browser)."""

from __future__ import annotations

from lesslabels.common.channels import make_channel
from lesslabels.v1 import run_pb2, run_store_pb2_grpc
from tests.stack import LABELS, wait_for


def gold(text: str) -> str:
    """The toy rows' label is spelled out at the start of their text."""
    return next(label for label in LABELS if text.startswith(label.replace("_", " ") + " "))


def run_flags(tiny_bert_dir) -> list[str]:
    """`lesslabels run` flags for a short run on the toy dataset with the tiny model."""
    return [
        "--dataset",
        "toy",
        "--base-model",
        str(tiny_bert_dir),
        "--seed-size",
        "12",
        "--batch-size",
        "8",
        "--max-rounds",
        "2",
        "--epochs",
        "1",
        "--train-batch-size",
        "8",
        "--max-length",
        "16",
        "--num-threads",
        "1",
        "--random-seed",
        "3",
    ]


def run_state(stack, run_id) -> run_pb2.Run:
    with make_channel(stack.pool_address) as channel:
        return run_store_pb2_grpc.RunStoreStub(channel).GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=10)


def runs(stack):
    with make_channel(stack.pool_address) as channel:
        return run_store_pb2_grpc.RunStoreStub(channel).ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs


def start_human_run(stack, tiny_bert_dir, *, asynchronous: bool = False, extra: tuple[str, ...] = ()) -> int:
    """Start a human-mode run with the CLI and wait until its seed batch waits for labels: with
    batch rounds unless ``asynchronous`` (the CLI's default for the human oracle)."""
    from lesslabels.cli.main import main as cli

    mode = "--async" if asynchronous else "--no-async"
    flags = [*run_flags(tiny_bert_dir), "--oracle", "human", mode, *extra]
    assert cli(["run", *flags, "--coordinator-address", stack.coordinator_address]) == 0
    run_id = max(r.id for r in runs(stack))
    wait_for(lambda: run_state(stack, run_id).state == run_pb2.RUN_STATE_WAITING_FOR_LABELS, 180, 0.2, "the seed batch")
    return run_id
