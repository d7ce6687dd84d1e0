"""What the scorer needs from outside, as typed ports.

:class:`~lesslabels.scorer.model_cache.ModelCache` resolves and loads checkpoints through a
:class:`CheckpointSource` (in production :class:`lesslabels.common.checkpoints.CheckpointStore`).
Anything with these methods will do, a test fake included, and mypy checks that it fits.
"""

from __future__ import annotations

import pathlib
from typing import Protocol

from lesslabels.common.checkpoints import Checkpoint


class CheckpointSource(Protocol):
    """Published checkpoints, read-only."""

    @property
    def root(self) -> pathlib.Path:
        """The folder the checkpoints are in (base models may be named inside it too)."""
        ...

    def get(self, checkpoint_id: str, *, verify: bool = False) -> Checkpoint: ...

    def latest(self, run_id: int) -> Checkpoint: ...

    def best(self, run_id: int, metric: str = "accuracy") -> Checkpoint: ...

    def list(self, run_id: int = 0) -> list[Checkpoint]: ...
