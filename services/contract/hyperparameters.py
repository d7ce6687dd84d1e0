"""Fine-tuning settings: one typed value, each bound declared once, one ``validate()``.

The coordinator checks a run's settings with this at StartRun, the run store keeps them as they
are (checking them with the same rule) and the trainer trains with exactly them, so a run that
starts is a run the trainer accepts (tests/unit/contract/test_hyperparameters.py shows it field by
field).

On the wire (``lesslabels.v1.Hyperparameters``) zero means "the default"; here every field holds
the value training uses, defaults filled in. A few fields read 0 as "none" or "automatic", as
documented beside them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from lesslabels.common.errors import InvalidArgument, quote
from lesslabels.contract import vocabulary


@dataclasses.dataclass(frozen=True)
class Bound:
    """The values a number may take: [low, high], either end open when said so."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def describe(self) -> str:
        low, high = (str(int(v)) if float(v).is_integer() else f"{v:g}" for v in (self.low, self.high))
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


#: Every numeric field's bounds, the one place they are written.
BOUNDS: dict[str, Bound] = {
    "learning_rate": Bound(0.0, 1.0, low_open=True),
    "batch_size": Bound(1, 4096),
    "max_epochs": Bound(1, 1000),
    "patience": Bound(1, 1000),
    "warmup_ratio": Bound(0.0, 1.0, high_open=True),
    "weight_decay": Bound(0.0, 1.0),
    # The base model's own position limit is checked by the trainer when it loads the model.
    "max_length": Bound(8, 8192),
    "validation_fraction": Bound(0.0, 0.9, low_open=True),
    "num_threads": Bound(0, 1024),
    "max_steps": Bound(0, 10_000_000),
    "min_steps": Bound(0, 10_000_000),
    "min_steps_per_class": Bound(0, 100_000),
    "holdout_min_per_class": Bound(0, 100_000),
}
#: Fields that name one of a fixed set of choices.
CHOICES: dict[str, tuple[str, ...]] = {
    "class_balance": vocabulary.CLASS_BALANCES,
    "precision": vocabulary.PRECISIONS,
    "head_init": vocabulary.HEAD_INITS,
    "pooling": vocabulary.POOLINGS,
}


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """How a round fine-tunes its model (mirrors lesslabels.v1.Hyperparameters)."""

    # lr 1e-4 and batch 16: every recipe measurement in bench/README.md (ATIS and CLINC150) used them.
    learning_rate: float = 1e-4
    batch_size: int = 16
    max_epochs: int = 10
    patience: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 64
    validation_fraction: float = 0.1
    use_labelled_validation: bool = False
    class_balance: str = "none"
    precision: str = "auto"
    num_threads: int = 0  # 0: the free CPUs, re-read while training
    max_steps: int = 0  # 0: no limit
    min_steps: int = 0  # 0: no floor
    # Many classes with a few labels each need more steps than a fixed epoch count gives
    # (bench/README.md, "Many classes"); 0: no per-class floor.
    min_steps_per_class: int = 8
    head_init: str = "prototype"
    holdout_min_per_class: int = 10
    # The head reads the mean of the token vectors, as sentence encoders were trained
    # (lesslabels.modeling.pooling; bench/README.md, "Pooling").
    pooling: str = "mean"

    def problems(self) -> list[str]:
        """Every impossible value, each naming its field; empty when all are fine."""
        found = []
        for field in dataclasses.fields(self):
            name, value = field.name, getattr(self, field.name)
            if name in BOUNDS:
                found.extend(_number_problem(name, value, field.type == "int", BOUNDS[name]))
            elif name in CHOICES:
                if value not in CHOICES[name]:
                    found.append(f"{name} {quote(value)} must be one of {', '.join(CHOICES[name])}")
            elif not isinstance(value, bool):
                found.append(f"{name} must be true or false, got {quote(value)}")
        if not found and self.max_steps and self.min_steps > self.max_steps:
            found.append(f"min_steps {self.min_steps} must not exceed max_steps {self.max_steps}")
        return found

    def validate(self) -> Hyperparameters:
        """Raise InvalidArgument naming every impossible value; return self when all are fine."""
        found = self.problems()
        if found:
            raise InvalidArgument("hyperparameters: " + "; ".join(found))
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Hyperparameters:
        """Settings given by field name (``{"max_epochs": 3}``); the rest keep their defaults.

        A choice may also be spelled as its protobuf enum name (``"CLASS_BALANCE_SAMPLING"``).
        InvalidArgument for an unknown field; the values are checked by ``validate()``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in values if k not in known)
        if unknown:
            raise InvalidArgument(
                f"hyperparameters: unknown field {quote(unknown[0])} (known: {', '.join(sorted(known))})"
            )
        given = dict(values)
        for name, value in given.items():
            if name in CHOICES and isinstance(value, str):
                given[name] = value.lower().removeprefix(f"{name}_")
        return cls(**given)

    def changed(self) -> dict[str, Any]:
        """The fields that differ from the defaults, by name."""
        defaults = Hyperparameters()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }


def _number_problem(name: str, value: Any, integer: bool, bound: Bound) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"{name} must be a number, got {quote(value)}"]
    if not math.isfinite(value):
        return [f"{name} must be finite, got {value}"]
    if integer and value != int(value):
        return [f"{name} must be a whole number, got {value}"]
    if not bound.holds(value):
        return [f"{name} must be in {bound.describe()}, got {value}"]
    return []
