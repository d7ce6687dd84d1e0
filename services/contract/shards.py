"""Shards of a listing: ``count`` disjoint parts of the samples, by bucket of their id.

Sample ``i`` belongs to shard ``i % count``: integer arithmetic that the pool's database (SQLite
and PostgreSQL alike) evaluates in the query, and that ``bucket`` reproduces for tests and checks.
Ids are consecutive within an import, so the shards of a pool are the same size to within one
sample per import; a seeded random subset (``lesslabels.pool.subset``) picks ids in a pseudo-random
order, so its shards are balanced too. The shards of one count never overlap and together hold
every sample, which is what lets several scorer replicas share a round without losing or
repeating a sample.

``lesslabels.contract.wire`` converts ``lesslabels.v1.Shard`` at the edge of the pool, the scorer and
the client SDK, which all take one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lesslabels.common import errors

#: The most shards a listing may be split into (Shard.count is an int32; more parts than this only
#: adds calls, each scorer replica taking one or a few).
MAX_SHARDS = 4096


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the samples whose id is ``index`` modulo ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        check(self.index, self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def check(index: int, count: int) -> None:
    """Raise InvalidArgument unless ``0 <= index < count <= MAX_SHARDS``."""
    if count < 1:
        raise errors.InvalidArgument(
            f"shard.count must be at least 1, got {count} (the number of parts the samples are split into)"
        )
    if count > MAX_SHARDS:
        raise errors.InvalidArgument(f"shard.count must be at most {MAX_SHARDS}, got {count}")
    if not 0 <= index < count:
        raise errors.InvalidArgument(f"shard.index must be in [0, {count}) for shard.count {count}, got {index}")


def all_shards(count: int) -> list[Shard]:
    """Every shard of ``count``: together they hold each sample exactly once."""
    return [Shard(i, count) for i in range(count)]


def bucket(sample_ids, count: int) -> np.ndarray:
    """The shard index of each id, as the pool computes it: ``[n] int64``."""
    return np.asarray(sample_ids, dtype=np.int64) % count
