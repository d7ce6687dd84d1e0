"""Checks on a run's configuration as the pool stores it (the JSON form of ``RunConfig``, field
names as in the proto): enum values known, numbers finite and within bounds, strings short.

``check_config_json`` runs at every write (CreateRun) and on every stored run read back, so a row
written by an older or broken writer is reported (the run marked FAILED with the reason) instead of
failing every ``ListRuns``. Zero (unset) always means "the default", as in run.proto."""

from __future__ import annotations

import json
import math
from typing import Any

from lesslabels.common.errors import InvalidArgument, quote
from lesslabels.v1 import common_pb2, run_pb2

#: Longest dataset name, run name and base model accepted.
MAX_STRING = {"dataset": 64, "name": 256, "base_model": 1024}
#: Largest count of an Amount (seed_size, batch_size, stopping.label_budget).
MAX_COUNT = 10_000_000
MAX_ROUNDS = 100_000
MAX_SEED = 2**32 - 1  # numpy's generators take seeds below 2**32
#: Largest number of candidates a round may score (more than the unlabelled pool means all of it).
MAX_CANDIDATES = 1_000_000_000

_ENUMS = {
    "strategy": run_pb2.Strategy,
    "seed_strategy": run_pb2.SeedStrategy,
    "oracle": run_pb2.OracleMode,
}
_HYPER_ENUMS = {
    "class_balance": common_pb2.ClassBalance,
    "precision": common_pb2.Precision,
    "head_init": common_pb2.HeadInit,
}
#: Hyperparameters that are numbers: (low, high, low is exclusive). Zero always passes (the default).
_HYPER_NUMBERS: dict[str, tuple[float, float, bool]] = {
    "learning_rate": (0.0, 1.0, True),
    "batch_size": (1, 4096, False),
    "max_epochs": (1, 1000, False),
    "patience": (1, 1000, False),
    "warmup_ratio": (0.0, 1.0, False),
    "weight_decay": (0.0, 1.0, False),
    "max_length": (8, 512, False),
    "validation_fraction": (0.0, 0.9, True),
    "num_threads": (1, 1024, False),
    "max_steps": (1, 10_000_000, False),
    "min_steps": (1, 10_000_000, False),
    "min_steps_per_class": (1, 100_000, False),
    "holdout_min_per_class": (1, 100_000, False),
}
_HYPER_BOOLS = ("use_labelled_validation",)


def check_config_json(text: str) -> dict[str, Any]:
    """The stored configuration ``text`` as a dict; InvalidArgument naming the first bad field."""
    try:
        config = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        raise InvalidArgument("run config: not valid JSON") from None
    if not isinstance(config, dict):
        raise InvalidArgument("run config: not a JSON object")
    check_config(config)
    return config


def check_config(config: dict[str, Any]) -> None:
    known = set(MAX_STRING) | set(_ENUMS) | {"seed_size", "batch_size", "stopping"}
    known |= {"random_seed", "hyperparameters", "warm_start", "candidates"}
    for key in config:
        if key not in known:
            raise InvalidArgument(f"run config: unknown field {quote(key)}")
    for key, limit in MAX_STRING.items():
        value = config.get(key, "")
        if not isinstance(value, str):
            raise InvalidArgument(f"run config: {key} must be a string")
        if len(value) > limit:
            raise InvalidArgument(f"run config: {key} is {len(value)} characters; at most {limit}")
    for key, enum in _ENUMS.items():
        _check_enum(f"run config: {key}", config.get(key), enum)
    for key in ("seed_size", "batch_size"):
        _check_amount(f"run config: {key}", config.get(key))
    stopping = _object("run config: stopping", config.get("stopping"))
    for key in stopping:
        if key not in ("label_budget", "max_rounds", "target_accuracy", "stable_agreement"):
            raise InvalidArgument(f"run config: unknown field stopping.{quote(key)}")
    _check_amount("run config: stopping.label_budget", stopping.get("label_budget"))
    _number("run config: stopping.max_rounds", stopping.get("max_rounds", 0), 0, MAX_ROUNDS, integer=True)
    for key in ("target_accuracy", "stable_agreement"):
        _number(f"run config: stopping.{key}", stopping.get(key, 0), 0.0, 1.0)
    _number("run config: random_seed", config.get("random_seed", 0), 0, MAX_SEED, integer=True)
    candidates = _number("run config: candidates", config.get("candidates", 0), -math.inf, math.inf, integer=True)
    if candidates < 0:
        raise InvalidArgument(
            f"run config: candidates must not be negative, got {int(candidates)} "
            "(the unlabelled samples a round scores; 0 = the whole unlabelled pool)"
        )
    if candidates > MAX_CANDIDATES:
        raise InvalidArgument(f"run config: candidates must be at most {MAX_CANDIDATES}, got {int(candidates)}")
    if not isinstance(config.get("warm_start", False), bool):
        raise InvalidArgument("run config: warm_start must be true or false")
    _check_hyperparameters(_object("run config: hyperparameters", config.get("hyperparameters")))


def _check_hyperparameters(values: dict[str, Any]) -> None:
    for key, value in values.items():
        what = f"run config: hyperparameters.{quote(key)}"
        if key in _HYPER_ENUMS:
            _check_enum(what, value, _HYPER_ENUMS[key])
        elif key in _HYPER_BOOLS:
            if not isinstance(value, bool):
                raise InvalidArgument(f"{what} must be true or false")
        elif key in _HYPER_NUMBERS:
            low, high, open_low = _HYPER_NUMBERS[key]
            is_int = isinstance(low, int)
            number = _number(what, value, -math.inf, math.inf, integer=is_int)
            if number == 0:
                continue
            if number < low or (open_low and number <= low) or number > high:
                bracket = "(" if open_low else "["
                raise InvalidArgument(f"{what} must be 0 (the default) or in {bracket}{low}, {high}], got {number}")
        else:
            raise InvalidArgument(f"{what} is not a known hyperparameter")


def _object(what: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be an object")
    return value


def _check_enum(what: str, value: Any, enum: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or value not in enum.keys():
        raise InvalidArgument(f"{what}: unknown value {quote(value)}")


def _check_amount(what: str, value: Any) -> None:
    amount = _object(what, value)
    if not amount:
        return
    if set(amount) - {"count", "fraction"} or len(amount) != 1:
        raise InvalidArgument(f"{what}: give exactly one of count or fraction")
    if "count" in amount:
        _number(f"{what}.count", amount["count"], 1, MAX_COUNT, integer=True)
    else:
        fraction = _number(f"{what}.fraction", amount["fraction"], 0.0, 1.0)
        if fraction <= 0:
            raise InvalidArgument(f"{what}.fraction must be in (0, 1], got {fraction}")


def _number(what: str, value: Any, low: float, high: float, *, integer: bool = False) -> float:
    """``value`` (a JSON number, or a string as protobuf writes int64 and NaN) within [low, high]."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{what} must be a number")
    if isinstance(value, str) and len(value) <= 40:
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise InvalidArgument(f"{what} must be a number, got {quote(value)}") from None
    if not isinstance(value, (int, float)):
        raise InvalidArgument(f"{what} must be a number")
    if not math.isfinite(value):
        raise InvalidArgument(f"{what} must be finite, got {value}")
    if integer and value != int(value):
        raise InvalidArgument(f"{what} must be a whole number, got {value}")
    if not low <= value <= high:
        raise InvalidArgument(f"{what} must be in [{low}, {high}], got {value}")
    return value
