"""Which samples of a dataset a call is about: one value instead of a list of keywords."""

from __future__ import annotations

import dataclasses
import numbers

from lesslabels.common.errors import InvalidArgument, quote
from lesslabels.contract.shards import Shard
from lesslabels.contract import vocabulary


@dataclasses.dataclass(frozen=True)
class SampleQuery:
    """The samples of one split of ``dataset``: by default those without a label in the scope of
    ``run_id`` (0: the dataset's own labels), every one with ``include_all``. ``subset=N``: a random
    subset of N of them that the pool draws under ``subset_seed`` (the same seed over the same samples
    gives the same subset); ``sample_ids``: only those; ``shard``: only that shard of them
    (``lesslabels.contract.shards``), for one of several scorer replicas."""

    dataset: str
    split: str = "train"
    run_id: int = 0
    include_all: bool = False
    subset: int = 0
    subset_seed: int = 0
    sample_ids: tuple[int, ...] = ()
    shard: Shard | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sample_ids, tuple):
            object.__setattr__(self, "sample_ids", tuple(int(i) for i in self.sample_ids))

    def validate(self) -> SampleQuery:
        """Raise InvalidArgument naming the first impossible field; return self when all are fine."""
        if not self.dataset:
            raise InvalidArgument("dataset is required")
        if self.split not in vocabulary.SPLITS:
            raise InvalidArgument(
                f"unknown split {quote(self.split)} (expected {', '.join(sorted(vocabulary.SPLITS))})"
            )
        if self.run_id < 0:
            raise InvalidArgument(f"run_id must not be negative, got {self.run_id}")
        if isinstance(self.subset, bool) or not isinstance(self.subset, numbers.Integral):
            raise InvalidArgument(f"subset.size must be a whole number of samples, got {self.subset!r}")
        if self.subset < 0:
            raise InvalidArgument(
                f"subset.size must not be negative, got {self.subset} (0 scores every matching sample)"
            )
        if self.subset and self.sample_ids:
            raise InvalidArgument("give a random subset or sample_ids, not both")
        return self
