"""One set of bounds for the fine-tuning settings: what StartRun accepts, the run store keeps and the
trainer trains with are the same, field by field, whatever a client sends."""

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
from lesslabels.v1 import common_pb2, run_pb2, run_store_pb2, trainer_pb2
from tests.stack import load_toy_dataset

INT32 = st.integers(-(2**31), 2**31 - 1)


def _near(bound) -> list[float]:
    """Values at, just inside and just outside a bound's ends."""
    return [bound.low, bound.high, bound.low - 1, bound.high + 1, (bound.low + bound.high) / 2]


def _any_value(field: dataclasses.Field) -> st.SearchStrategy:
    """Any value a client could send: at, inside and outside the bounds, non-finite, unknown enums."""
    name = field.name
    if name in CHOICES:
        return st.integers(0, len(CHOICES[name]) + 2)  # every enum value, and some no name exists for
    if name not in BOUNDS:
        return st.booleans()
    edges = _near(BOUNDS[name])
    if field.type == "int":
        return st.one_of(st.sampled_from([0, *[int(e) for e in edges]]), INT32)
    return st.one_of(st.sampled_from([0.0, *edges, 1e-9, math.nan, math.inf, -math.inf]), st.floats(-2.0, 10_000.0))


def _valid_value(field: dataclasses.Field) -> st.SearchStrategy:
    """A value within the field's bounds (or 0, "the default")."""
    name = field.name
    if name in CHOICES:
        return st.integers(0, len(CHOICES[name]))  # 0 is the default, or the first choice
    if name not in BOUNDS:
        return st.booleans()
    bound = BOUNDS[name]
    if field.type == "int":
        return st.one_of(st.just(0), st.integers(int(bound.low), int(bound.high)))
    inside = st.floats(bound.low, bound.high, exclude_min=bound.low_open, exclude_max=bound.high_open)
    return st.one_of(st.just(0.0), inside)


FIELDS = dataclasses.fields(Hyperparameters)


@st.composite
def hyperparameter_messages(draw) -> common_pb2.Hyperparameters:
    """Settings within their bounds, with one field (or none) given any value a client could send."""
    values = {f.name: draw(_valid_value(f)) for f in FIELDS}
    broken = draw(st.one_of(st.none(), st.sampled_from(FIELDS)))
    if broken is not None:
        values[broken.name] = draw(_any_value(broken))
    return common_pb2.Hyperparameters(**values)


HYPERPARAMETER_MESSAGES = hyperparameter_messages()


@pytest.fixture
def trainer(tmp_path):
    """A real Trainer (on this machine's CPU); only its settings check is called."""
    pytest.importorskip("torch")
    from lesslabels.common.checkpoints import CheckpointStore
    from lesslabels.trainer.core import Trainer

    return Trainer(pool=None, store=CheckpointStore(tmp_path / "checkpoints"), device="cpu")  # type: ignore[arg-type]


@pytest.fixture
def toy_pool(pool_address, stub):
    load_toy_dataset(pool_address)
    return stub


def _coordinator_accepts(message: common_pb2.Hyperparameters) -> RunConfig | None:
    """The run configuration StartRun would create (the servicer's decode, then the orchestrator's
    ``with_defaults``, which validates), or None when the coordinator refuses it."""
    try:
        return wire.run_config_from_proto(run_pb2.RunConfig(dataset="toy", hyperparameters=message)).with_defaults()
    except InvalidArgument:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=HYPERPARAMETER_MESSAGES)
def test_a_run_stores_exactly_what_the_trainer_trains_with(toy_pool, trainer, message):
    """StartRun's checks, the run store and the trainer agree, whatever a client sends: the settings
    go coordinator -> run store -> (read back) -> StartTrainingRequest -> trainer, field by field."""
    config = _coordinator_accepts(message)
    # The run store is asked to keep even what the coordinator would refuse: it checks with the same rule.
    sent = wire.run_config_to_proto(config) if config else run_pb2.RunConfig(dataset="toy", hyperparameters=message)
    try:
        run = toy_pool.CreateRun(run_store_pb2.CreateRunRequest(config=sent), timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
        assert config is None, f"the run store refused what StartRun accepts: {exc.details()}"
        assert "hyperparameters." in exc.details()
        return
    assert config is not None, f"the run store kept what StartRun refuses: {message}"
    stored = toy_pool.GetRun(run_pb2.GetRunRequest(run_id=run.id), timeout=10).config
    request = wire.train_request_to_proto(
        TrainRequest(dataset="toy", run_id=run.id, hyperparameters=wire.run_config_from_proto(stored).hyperparameters)
    )
    received = wire.train_request_from_proto(trainer_pb2.StartTrainingRequest.FromString(request.SerializeToString()))
    if config.hyperparameters.precision == "fp16":  # valid anywhere, trainable on a CUDA trainer only
        with pytest.raises(InvalidArgument, match="fp16 needs CUDA"):
            trainer.check_settings(received.hyperparameters)
        return
    trained = trainer.check_settings(received.hyperparameters)
    for field in dataclasses.fields(Hyperparameters):
        assert getattr(trained, field.name) == getattr(config.hyperparameters, field.name), field.name


def test_the_bounds_at_the_edges():
    """POOLING_CLS is a setting a run may carry; warmup_ratio 1.0 is refused; max_length spans [8, 8192]."""
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
