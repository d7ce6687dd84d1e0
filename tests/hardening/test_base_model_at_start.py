"""StartRun checks base_model against the trainer's model folders before a run is stored (issue 25,
item 6): a base model the trainer may not train from is INVALID_ARGUMENT at once, quoting the
caller's input and no server path, and no run is stored; an allowed one still starts. Through the
real in-process coordinator, trainer and pool."""

from __future__ import annotations

import shutil

import pytest

from lesslabels.client import CoordinatorClient, RunConfig, errors
from lesslabels.common.errors import quote
from lesslabels.pool.run_store_client import RunStoreClient
from tests.stack import load_toy_dataset


def _config(base_model: str) -> RunConfig:
    return RunConfig(dataset="toy", base_model=base_model, hyperparameters={"max_length": 16, "num_threads": 1})


@pytest.fixture
def clients(real_stack):
    load_toy_dataset(real_stack.pool_address)
    with CoordinatorClient(real_stack.coordinator_address, timeout=30) as coordinator:
        with RunStoreClient(real_stack.pool_address, timeout=10) as runs:
            yield coordinator, runs


def test_a_base_model_outside_the_model_folders_is_refused_at_start_run(clients, tmp_path, tiny_bert_dir):
    coordinator, runs = clients
    outside = tmp_path / "elsewhere" / "a-model"  # a real model folder, outside the model folders
    shutil.copytree(tiny_bert_dir, outside)
    names = [
        "/etc",
        "/etc/passwd",
        "../..",
        f"{tiny_bert_dir}/../..",
        f"{tiny_bert_dir}/../{tiny_bert_dir.name}",  # the allowed folder, through ..
        str(outside),
        "/nonexistent/model",
        "bert-base-uncased",  # a hub name no model folder holds: nothing is downloaded
        "/" + "a" * 1000,  # within the contract's 1,024 characters, quoted short
    ]
    for name in names:
        with pytest.raises(errors.InvalidArgument) as refused:
            coordinator.start_run(_config(name))
        message = refused.value.details
        assert message.startswith(f"base_model {quote(name)}: "), message
        assert "model folder" in message, message
        assert str(tiny_bert_dir) not in message.replace(name, ""), message  # no server path but the input
        assert len(message) < 600, message
    assert runs.list_runs() == []  # nothing stored


def test_control_characters_in_base_model_are_refused_by_the_contract(clients):
    coordinator, runs = clients
    for name in ("model\n", "\x1b]0;title\x07", "my\u202emodel", "a\x00b"):
        with pytest.raises(errors.InvalidArgument) as refused:
            coordinator.start_run(_config(name))
        assert "base_model holds the control character" in refused.value.details
    assert runs.list_runs() == []


def test_a_base_model_in_the_model_folders_still_starts(clients, tiny_bert_dir):
    coordinator, runs = clients
    run = coordinator.start_run(_config(str(tiny_bert_dir)))
    coordinator.cancel(run.id)
    assert [r.id for r in runs.list_runs()] == [run.id]
    assert runs.get_run(run.id).config.base_model == str(tiny_bert_dir)


def test_a_base_model_too_short_for_max_length_is_refused(clients, tiny_bert_dir):
    coordinator, runs = clients
    config = RunConfig(dataset="toy", base_model=str(tiny_bert_dir), hyperparameters={"max_length": 512})
    with pytest.raises(errors.InvalidArgument) as refused:
        coordinator.start_run(config)
    assert "max_length 512 exceeds the 128 positions" in refused.value.details
    assert runs.list_runs() == []


def test_with_the_trainer_down_a_named_base_model_is_unavailable_and_nothing_is_stored(
    real_stack, clients, tiny_bert_dir
):
    coordinator, runs = clients
    real_stack.servers["trainer"].stop(0)
    with pytest.raises(errors.Unavailable) as refused:
        coordinator.start_run(_config(str(tiny_bert_dir)))
    assert "cannot be checked now" in refused.value.details and "nothing was stored" in refused.value.details
    assert real_stack.trainer_address not in refused.value.details
    assert runs.list_runs() == []
