"""The one vocabulary: every protobuf enum value has exactly one core name, both ways."""

from __future__ import annotations

import pytest

from lesslabels.contract import vocabulary, wire
from lesslabels.v1 import common_pb2, run_pb2, trainer_pb2


@pytest.mark.parametrize(
    "enum, to_core, to_proto",
    [
        (common_pb2.Split, wire.SPLIT_TO_CORE, wire.SPLIT_TO_PROTO),
        (common_pb2.LabelSource, wire.SOURCE_TO_CORE, wire.SOURCE_TO_PROTO),
        (run_pb2.RunState, wire.RUN_STATE_TO_CORE, wire.RUN_STATE_TO_PROTO),
        (run_pb2.RunStep, wire.RUN_STEP_TO_CORE, wire.RUN_STEP_TO_PROTO),
        (run_pb2.Strategy, wire.STRATEGY_TO_CORE, wire.STRATEGY_TO_PROTO),
        (run_pb2.SeedStrategy, wire.SEED_STRATEGY_TO_CORE, wire.SEED_STRATEGY_TO_PROTO),
        (run_pb2.OracleMode, wire.ORACLE_TO_CORE, wire.ORACLE_TO_PROTO),
        (trainer_pb2.JobState, wire.JOB_STATE_TO_CORE, wire.JOB_STATE_TO_PROTO),
        (common_pb2.ClassBalance, wire.CLASS_BALANCE_TO_CORE, wire.CLASS_BALANCE_TO_PROTO),
        (common_pb2.Precision, wire.PRECISION_TO_CORE, wire.PRECISION_TO_PROTO),
        (common_pb2.HeadInit, wire.HEAD_INIT_TO_CORE, wire.HEAD_INIT_TO_PROTO),
        (common_pb2.Pooling, wire.POOLING_TO_CORE, wire.POOLING_TO_PROTO),
    ],
    ids=lambda v: getattr(v, "DESCRIPTOR", None) and v.DESCRIPTOR.name,
)
def test_every_enum_value_has_one_core_name(enum, to_core, to_proto):
    # CLASS_BALANCE_NONE and PRECISION_AUTO are 0 themselves; every other enum's 0 is UNSPECIFIED.
    specified = {value for value in enum.values() if value != 0 or not enum.Name(0).endswith("_UNSPECIFIED")}
    assert set(to_core) == specified, f"{enum.DESCRIPTOR.name}: values without a core name or names of no value"
    assert {to_proto[name] for name in to_core.values()} == specified
    assert len(set(to_core.values())) == len(to_core)


def test_the_strategy_names_are_the_coordinators():
    from lesslabels.coordinator import strategies

    assert set(vocabulary.STRATEGIES) == set(strategies.QUERY_STRATEGIES)
    assert set(vocabulary.SEED_STRATEGIES) == set(strategies.SEED_STRATEGIES)


def test_the_trainers_job_states_are_the_vocabularys():
    pytest.importorskip("torch")
    from lesslabels.trainer.job_types import JobState

    assert tuple(s.value for s in JobState) == vocabulary.JOB_STATES
    assert {s.value for s in JobState if s.done} == set(vocabulary.FINAL_JOB_STATES)


def test_subsets_are_drawn_from_their_sets():
    assert set(vocabulary.ACTIVE_RUN_STATES) | set(vocabulary.FINAL_RUN_STATES) == set(vocabulary.RUN_STATES)
    assert not set(vocabulary.ACTIVE_RUN_STATES) & set(vocabulary.FINAL_RUN_STATES)
    assert vocabulary.flag_name("least_confidence") == "least-confidence"
