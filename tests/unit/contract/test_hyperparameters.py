"""One set of bounds for the fine-tuning settings: what the pool stores at StartRun is exactly what
the trainer accepts, field by field, whatever a client sends."""

from __future__ import annotations

import dataclasses
import math

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lesslabels.common.errors import InvalidArgument
from lesslabels.contract import Hyperparameters, RunConfig, TrainRequest, wire
from lesslabels.contract.hyperparameters import BOUNDS, CHOICES
from lesslabels.v1 import common_pb2, pool_pb2, run_pb2, run_store_pb2, trainer_pb2
from tests.stack import load_toy_dataset

INT32 = st.integers(-(2**31), 2**31 - 1)


def _near(bound) -> list[float]:
    """Values at, just inside and just outside a bound's ends."""
    return [bound.low, bound.high, bound.low - 1, bound.high + 1, (bound.low + bound.high) / 2]


def _field(field: dataclasses.Field) -> st.SearchStrategy:
    name = field.name
    if name in CHOICES:
        return st.integers(0, len(CHOICES[name]) + 2)  # every enum value, and some no name exists for
    if name not in BOUNDS:
        return st.booleans()
    edges = _near(BOUNDS[name])
    if field.type == "int":
        return st.one_of(st.sampled_from([0, *[int(e) for e in edges]]), INT32)
    return st.one_of(st.sampled_from([0.0, *edges, 1e-9, math.nan, math.inf, -math.inf]), st.floats(-2.0, 10_000.0))


HYPERPARAMETER_MESSAGES = st.fixed_dictionaries({f.name: _field(f) for f in dataclasses.fields(Hyperparameters)}).map(
    lambda fields: common_pb2.Hyperparameters(**fields)
)


def _trainer_accepts(message: common_pb2.Hyperparameters) -> Hyperparameters | None:
    """What the trainer trains with for ``message`` (the decode of its StartTraining handler and the
    first check of ``Trainer.check``), or None when it refuses it."""
    try:
        request = wire.train_request_from_proto(
            trainer_pb2.StartTrainingRequest(dataset="toy", hyperparameters=message)
        )
        return request.hyperparameters.validate()
    except InvalidArgument:
        return None


@pytest.fixture
def toy_pool(pool_address, stub):
    load_toy_dataset(pool_address)
    return stub


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=HYPERPARAMETER_MESSAGES)
def test_the_pool_stores_exactly_what_the_trainer_accepts(toy_pool, message):
    accepted = _trainer_accepts(message)
    config = run_pb2.RunConfig(dataset="toy", hyperparameters=message)
    try:
        run = toy_pool.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
        assert accepted is None, f"the pool refused what the trainer accepts: {exc.details()}"
        assert "hyperparameters." in exc.details()
        return
    assert accepted is not None, f"the pool stored what the trainer refuses: {message}"
    # What the coordinator reads back from the pool and hands the trainer, hop by hop.
    stored = toy_pool.GetRun(pool_pb2.GetRunRequest(run_id=run.id), timeout=10).config
    read = wire.run_config_from_proto(stored).hyperparameters
    sent = wire.train_request_to_proto(TrainRequest(dataset="toy", hyperparameters=read))
    trained = _trainer_accepts(sent.hyperparameters)
    for field in dataclasses.fields(Hyperparameters):
        assert getattr(trained, field.name) == getattr(accepted, field.name), field.name


def test_the_bounds_the_issue_found_disagreeing():
    """Each of these was accepted by one service and refused by another before the contract."""
    assert wire.hyperparameters_from_proto(common_pb2.Hyperparameters(pooling=common_pb2.POOLING_CLS)).pooling == "cls"
    with pytest.raises(InvalidArgument, match=r"warmup_ratio must be in \[0, 1\), got 1.0"):
        Hyperparameters(warmup_ratio=1.0).validate()
    assert Hyperparameters(max_length=8192).validate().max_length == 8192
    with pytest.raises(InvalidArgument, match=r"max_length must be in \[8, 8192\], got 4"):
        Hyperparameters(max_length=4).validate()


def test_every_impossible_value_is_named():
    bad = Hyperparameters(learning_rate=math.nan, batch_size=0, precision="fp8", use_labelled_validation=2)  # type: ignore[arg-type]
    message = str(pytest.raises(InvalidArgument, bad.validate).value)
    assert "learning_rate must be finite, got nan" in message
    assert "batch_size must be in [1, 4096], got 0" in message
    assert "precision 'fp8' must be one of auto, fp32, bf16, fp16" in message
    assert "use_labelled_validation must be true or false, got 2" in message


def test_min_steps_may_not_exceed_max_steps():
    with pytest.raises(InvalidArgument, match="min_steps 50 must not exceed max_steps 10"):
        Hyperparameters(min_steps=50, max_steps=10).validate()
    assert Hyperparameters(min_steps=50, max_steps=0).validate().min_steps == 50


def test_a_mapping_takes_field_names_and_either_spelling_of_a_choice():
    given = Hyperparameters.from_mapping({"max_epochs": 3, "class_balance": "CLASS_BALANCE_WEIGHTED_LOSS"})
    assert given == Hyperparameters(max_epochs=3, class_balance="weighted_loss")
    assert given.changed() == {"max_epochs": 3, "class_balance": "weighted_loss"}
    assert RunConfig(dataset="d", hyperparameters={"pooling": "cls"}).hyperparameters.pooling == "cls"
    with pytest.raises(InvalidArgument, match="unknown field 'learning_speed'"):
        Hyperparameters.from_mapping({"learning_speed": 1})


def test_the_wire_leaves_defaults_unset_except_in_a_manifest():
    changed = Hyperparameters(max_epochs=3, pooling="cls")
    message = wire.hyperparameters_to_proto(changed)
    assert message.max_epochs == 3 and message.pooling == common_pb2.POOLING_CLS
    assert message.batch_size == 0 and message.head_init == common_pb2.HEAD_INIT_UNSPECIFIED
    assert wire.hyperparameters_to_proto(changed, explicit=True).batch_size == 16
    assert wire.hyperparameters_from_proto(message) == changed
