"""The one vocabulary of the system: the core's names for splits, label sources, run states and
steps, strategies, oracle modes and training-job states, and their maps to and from the protobuf
enums.

Cores use the plain names (``"train"``, ``"RUNNING"``, ``"least_confidence"``); the edges (servicers,
clients, the CLI) convert with these maps and nothing else. UNSPECIFIED (0) is in no map: each edge
decides what an unset enum means.
"""

from __future__ import annotations

from lesslabels.v1 import common_pb2, run_pb2, trainer_pb2


def _inverse(mapping: dict) -> dict:
    return {v: k for k, v in mapping.items()}


SPLIT_TO_CORE = {common_pb2.SPLIT_TRAIN: "train", common_pb2.SPLIT_TEST: "test", common_pb2.SPLIT_DEV: "dev"}
SPLIT_TO_PROTO = _inverse(SPLIT_TO_CORE)
SPLITS = tuple(SPLIT_TO_PROTO)

SOURCE_TO_CORE = {
    common_pb2.LABEL_SOURCE_SEED: "seed",
    common_pb2.LABEL_SOURCE_ORACLE: "oracle",
    common_pb2.LABEL_SOURCE_HUMAN: "human",
}
SOURCE_TO_PROTO = _inverse(SOURCE_TO_CORE)
SOURCES = tuple(SOURCE_TO_PROTO)

RUN_STATES = ("PENDING", "RUNNING", "WAITING_FOR_LABELS", "COMPLETED", "CANCELLED", "FAILED")
#: States a coordinator picks up on start-up and keeps advancing.
ACTIVE_RUN_STATES = ("PENDING", "RUNNING", "WAITING_FOR_LABELS")
#: States a run ends in (a watch stream ends on them; a resume moves a run out of them).
FINAL_RUN_STATES = ("COMPLETED", "CANCELLED", "FAILED")
RUN_STATE_TO_CORE = {run_pb2.RunState.Value(f"RUN_STATE_{s}"): s for s in RUN_STATES}
RUN_STATE_TO_PROTO = _inverse(RUN_STATE_TO_CORE)

RUN_STEPS = ("SEED", "LABEL", "TRAIN", "EVALUATE", "SCORE", "SELECT", "DONE")
RUN_STEP_TO_CORE = {run_pb2.RunStep.Value(f"RUN_STEP_{s}"): s for s in RUN_STEPS}
RUN_STEP_TO_PROTO = _inverse(RUN_STEP_TO_CORE)

STRATEGY_TO_CORE = {
    run_pb2.STRATEGY_ENTROPY: "entropy",
    run_pb2.STRATEGY_MARGIN: "margin",
    run_pb2.STRATEGY_LEAST_CONFIDENCE: "least_confidence",
    run_pb2.STRATEGY_RATIO: "ratio",
    run_pb2.STRATEGY_RANDOM: "random",
    run_pb2.STRATEGY_CLUSTERED_ENTROPY: "clustered_entropy",
    run_pb2.STRATEGY_CLUSTERED_MARGIN: "clustered_margin",
}
STRATEGY_TO_PROTO = _inverse(STRATEGY_TO_CORE)

SEED_STRATEGY_TO_CORE = {run_pb2.SEED_STRATEGY_RANDOM: "random", run_pb2.SEED_STRATEGY_DIVERSE: "diverse"}
SEED_STRATEGY_TO_PROTO = _inverse(SEED_STRATEGY_TO_CORE)

ORACLE_TO_CORE = {run_pb2.ORACLE_MODE_SIMULATED: "simulated", run_pb2.ORACLE_MODE_HUMAN: "human"}
ORACLE_TO_PROTO = _inverse(ORACLE_TO_CORE)
ORACLES = tuple(ORACLE_TO_PROTO)

JOB_STATES = ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED")
#: States a training job ends in.
FINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED")
JOB_STATE_TO_CORE = {trainer_pb2.JobState.Value(f"JOB_STATE_{s}"): s for s in JOB_STATES}
JOB_STATE_TO_PROTO = _inverse(JOB_STATE_TO_CORE)


def flag_name(core_name: str) -> str:
    """A core name as a command-line value: ``least_confidence`` -> ``least-confidence``."""
    return core_name.replace("_", "-")
