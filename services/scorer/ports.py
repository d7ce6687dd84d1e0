"""What the scorer needs from outside, as typed ports.

:class:`~lesslabels.scorer.engine.ScorerEngine` resolves and loads checkpoints through a
:class:`CheckpointSource` (in production :class:`lesslabels.common.checkpoints.CheckpointStore`).
Anything with these methods will do, a test fake included, and mypy checks that it fits.
"""

from __future__ import annotations

from typing import Protocol

from lesslabels.common.checkpoints import Checkpoint


class CheckpointSource(Protocol):
    """Published checkpoints, read-only."""

    def get(self, checkpoint_id: str, *, verify: bool = False) -> Checkpoint: ...

    def latest(self, run_id: int) -> Checkpoint: ...
