"""The one vocabulary of the system: the names cores use for splits, label sources, label states, import formats, run states
and steps, strategies, oracle modes, training-job states and the training settings' choices.

No protobuf here: ``lesslabels.contract.wire`` maps these names to and from the protobuf enums.
"""

from __future__ import annotations

SPLITS = ("train", "test", "dev")
SOURCES = ("seed", "oracle", "human", "review")
#: Which samples a listing keeps by label state.
LABEL_STATES = ("any", "labelled", "unlabelled")
#: File formats of an import: guessed, headerless ``label,text`` CSV, CSV with a header row, JSON lines, Parquet.
IMPORT_FORMATS = ("auto", "csv", "csv_header", "jsonl", "parquet")

RUN_STATES = ("PENDING", "RUNNING", "WAITING_FOR_LABELS", "COMPLETED", "CANCELLED", "FAILED")
#: States a coordinator picks up on start-up and keeps advancing.
ACTIVE_RUN_STATES = ("PENDING", "RUNNING", "WAITING_FOR_LABELS")
#: States a run ends in (a watch stream ends on them; a resume moves a run out of them).
FINAL_RUN_STATES = ("COMPLETED", "CANCELLED", "FAILED")
RUN_STEPS = ("SEED", "LABEL", "TRAIN", "EVALUATE", "SCORE", "SELECT", "DONE")

#: Query strategies (how a round picks the next batch).
STRATEGIES = (
    "entropy",
    "margin",
    "least_confidence",
    "ratio",
    "random",
    "clustered_entropy",
    "clustered_margin",
)
#: How the first labelled set is chosen.
SEED_STRATEGIES = ("random", "diverse")
ORACLES = ("simulated", "human")

JOB_STATES = ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED")
#: States a training job ends in.
FINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED")

CLASS_BALANCES = ("none", "weighted_loss", "sampling")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: The scorer's engine for checkpoints (``--runtime``); the trainer's ``--onnx-export``.
RUNTIMES = ("auto", "torch", "onnx")
ONNX_EXPORTS = ("auto", "on", "off")
HEAD_INITS = ("prototype", "random")
POOLINGS = ("mean", "cls")


def flag_name(core_name: str) -> str:
    """A core name as a command-line value: ``least_confidence`` -> ``least-confidence``."""
    return core_name.replace("_", "-")
